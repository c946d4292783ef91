"""rebench-view: a local web app over run directories and studies (the `[view]` extra).

`runs` finds runs and studies and says where each stands, `live` follows a run's log as it grows,
`workspace` compares the workspace as it ended with the starting one, `scaffolds` reads a
scaffold's own state (AIDE's journal, Modular's options and choices), and `app` serves them as a
JSON API beside the static page in `static/`. Only `app` needs Starlette; nothing here writes to a
run directory.
"""

DEFAULT_PORT = 7580  # rebench-view's, and what a report's links to run pages assume
