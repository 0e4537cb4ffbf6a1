"""Images in: the dataset scan, splits, thumbnails, cleaned manifests, and dataset builders (sources/)."""
