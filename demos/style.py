"""The app's CSS, shared by the tabs: ``app.py`` hands it to ``demo.launch(css=...)``.

``pre.generated`` is the monospace text block in which the Text generation tab writes and the
"Inside the RNN" tab colours the text by one hidden unit; ``#caption-heatmaps`` is the captioning tab's gallery;
``#live-samples`` holds the Train tab's samples, one short scrolling block each so the newest stays in view.
``.inside-table`` is the "Inside the RNN" tab's table of a cell's arithmetic. ``MODEL_COLOURS`` gives each character
model one colour, used by every plot that draws it.
"""

# label (as the model menus name it) -> its colour in every plot; a learner follows a model across plots by it
MODEL_COLOURS = {"Vanilla RNN": "#1f77b4", "LSTM": "#d62728", "GRU": "#2ca02c", "minGRU": "#9467bd",
                 "RG-LRU (Hawk)": "#ff7f0e", "Transformer": "#7f7f7f"}


def model_colour(label: str) -> str | None:
    """The colour of the model called ``label``; None (the plot's own choice) for a model of the user's."""
    return MODEL_COLOURS.get(label)

CSS = """
pre.generated { white-space: pre-wrap; font-family: ui-monospace, monospace; font-size: 14px; line-height: 1.5;
                padding: 12px; border-radius: 8px; min-height: 120px; }
pre.generated .prompt { font-weight: bold; }
#live-samples pre.generated { min-height: 0; max-height: 10em; overflow-y: auto; margin: 4px 0 0 0; }
#live-samples .live-sample { margin-bottom: 16px; overflow: hidden; }
.inside-table { overflow-x: auto; }
.inside-table table { border-collapse: collapse; font-size: 13px; }
.inside-table td, .inside-table th { padding: 2px 8px; border-bottom: 1px solid #8883; text-align: right; white-space: nowrap; }
.inside-table th { white-space: normal; vertical-align: bottom; }
.inside-table .sym { text-align: left; font-family: ui-monospace, monospace; white-space: normal; min-width: 8em; }
.inside-table .what { font-family: sans-serif; font-size: 11px; color: #777; }
.inside-table tr.stage td { border-top: 2px solid #8886; }
pre.generated.small { min-height: 0; font-size: 13px; margin: 2px 0 10px 0; padding: 8px; }
@media (max-width: 640px) {
  #caption-heatmaps .grid-container { grid-template-columns: repeat(3, minmax(0, 1fr)) !important; }
}
"""
