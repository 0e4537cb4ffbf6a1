"""A run put to use by people and programs: the HTML report, predict, serve, the printed summary."""
