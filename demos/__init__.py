"""One module per tab of the app: plain handler functions, then the tab's layout and event wiring."""
