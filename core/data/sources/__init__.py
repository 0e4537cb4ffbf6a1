"""Dataset builders: each turns a public source into a folder of images plus a manifest.csv for `--data`."""
