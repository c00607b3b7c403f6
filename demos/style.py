"""The app's CSS and its one script, shared by the tabs: ``app.py`` hands them to ``demo.launch(css=..., head=...)``.

``pre.generated`` is the monospace text block in which the Text generation tab writes and the
"Inside the RNN" tab colours the text by one hidden unit;
``#live-samples`` holds the Train tab's samples, one short scrolling block each so the newest stays in view.
``.inside-table`` is the "Inside the RNN" tab's table of a cell's arithmetic, ``.nbest`` the n-best tables of
Translation and Image captioning, ``#live-loss`` the Train tab's loss plot; ``.user-message`` the line under a
button that explains a mistake in the input (``demos/wiring.py``). ``MODEL_COLOURS`` gives each character
model one colour, used by every plot that draws it; ``titled_plot`` and ``plotly_text`` are how every tab shows a
Plotly figure and the words in it; ``figure`` is how a handler builds one per request.
"""
import functools

import gradio as gr
import plotly.graph_objects as go
import plotly.io as pio

# label (as the model menus name it) -> its colour in every plot; a learner follows a model across plots by it
MODEL_COLOURS = {"Vanilla RNN": "#1f77b4", "LSTM": "#d62728", "GRU": "#2ca02c", "minGRU": "#9467bd",
                 "RG-LRU (Hawk)": "#ff7f0e", "Transformer": "#7f7f7f"}


def model_colour(label: str) -> str | None:
    """The colour of the model called ``label``; None (the plot's own choice) for a model of the user's."""
    return MODEL_COLOURS.get(label)


def figure(data: list[dict], layout: dict) -> go.Figure:
    """A Plotly figure made from plain dicts, unchecked: ``data`` a list of traces, each with its "type" ("heatmap",
    "scatter", ...), ``layout`` nested dicts, numpy arrays as they are (Plotly sends them as binary).

    Why: Plotly's checking object API (``go.Heatmap(...)``, ``make_subplots``, ``fig.update_layout``) holds the
    server's Python lock while it checks every property: 13-60 ms per figure alone (the LSTM's gates: 59 ms), 30-120 ms
    under 20 concurrent users; from dicts the same figures take 1-5 ms. The figure still answers ``fig.data[0].y`` or
    ``fig.layout.yaxis.ticktext``. What the checks did, the dicts must do themselves: spell a colour scale out with
    ``colour_scale``, give a template as a ``go.layout.Template`` (as ``line_plot_layout`` does), and nest paths
    ("xaxis": {"title": ...}, not "xaxis.title").
    """
    return go.Figure({"data": data, "layout": layout}, _validate=False)


@functools.cache
def colour_scale(name: str) -> list:
    """Plotly's colour scale ``name`` as the [position, colour] pairs the browser gets: Plotly.js knows fewer names
    ("RdBu_r" not at all) and draws some of the same names in other colours, so the scale travels spelled out."""
    return go.Heatmap(colorscale=name).colorscale


# Plotly's toolbar takes the top of a figure, and a touch screen shows it all the time: legends and titles start below it
TOOLBAR_PX = 32


def line_plot_layout(height: int) -> dict:
    """The layout of a line plot that reads on a phone as on a desktop: 12 px text, the legend in rows above the plot
    rather than beside it (beside it, it took a third of a 390 px screen), thin margins. Give it to ``figure`` (with
    the plot's own keys: ``{**line_plot_layout(420), "xaxis": ...}``) or to ``fig.update_layout``. Show the plot
    with ``titled_plot``: gr.Plot's own label would lie over this legend."""
    # the template as an object, not its name: ``figure`` does not look names up, and update_layout would merge a
    # dict into the default template instead of replacing it
    # the legend under Plotly's toolbar, which would lie over a phone's first legend row
    return {"height": height, "font": {"size": 12}, "margin": {"l": 10, "r": 10, "t": TOOLBAR_PX + 44, "b": 10},
            "legend": {"orientation": "h", "x": 0, "yref": "container", "y": 1 - TOOLBAR_PX / height,
                       "yanchor": "top"},
            "hovermode": "closest", "template": pio.templates["plotly_white"]}


# The n-best tables' column widths (gr.Dataframe's column_widths), for tables with elem_classes ["nbest", "nbest-" +
# key]: the text column a share of the table's width (Gradio sizes an "auto" column to its unwrapped text), the others
# fixed. The text column then takes what the fixed ones leave (_nbest_css): on a phone the scores, which are the
# ranking, stay on screen (a newcomer did not find them a swipe away), and on a laptop the columns fill their frame
# (at 60% they stopped 110 px short of it).
NBEST_WIDTHS = {"translate": ["28px", "40px", "60%", "64px", "72px"],  # sentence, rank, candidate, score, log-prob
                "caption": ["40px", "60%", "64px", "72px"]}  # rank, caption, score, log-prob


def _nbest_css() -> str:
    """Gradio sets each column's width on the cell itself (a header's th, a row's div.body-cell), in px, so these must
    be !important. The table's block is a size container, so 100cqw is its width; 2 px: its frame. The columns must
    fill the table exactly, or the header table (at least 100% wide) spreads the difference over its columns and they
    no longer line up."""
    rules = [".nbest { container-type: inline-size; }"]
    for key, widths in NBEST_WIDTHS.items():
        text = next(i for i, w in enumerate(widths) if w.endswith("%")) + 1
        fixed = sum(int(w.removesuffix("px")) for w in widths if w.endswith("px"))
        rules.append(f".nbest-{key} :is(th, td, .body-cell):nth-child({text}) {{ --w: calc(100cqw - 2px - {fixed}px);"
                     " width: var(--w) !important; min-width: var(--w) !important; max-width: var(--w) !important;"
                     " flex: 0 0 var(--w) !important; }")
    return "\n".join(rules)


def titled_plot(title: str, **kw) -> gr.Plot:
    """A ``gr.Plot`` under ``title`` (Markdown): gr.Plot draws its own label over the figure's top left corner, where
    Plotly's toolbar, a legend or a menu is, on a phone above all. ``kw`` goes to gr.Plot (value, elem_id)."""
    gr.Markdown(title)
    return gr.Plot(show_label=False, **kw)


def ranked_round(values: list[float], digits: int = 3) -> list[str]:
    """``values`` printed with ``digits`` decimals, or with more (up to 6, the same for the whole column) where that
    would print two different neighbours of a ranked list alike: an n-best list showed -3.391 twice and its order
    looked arbitrary."""
    for d in range(digits, 7):
        shown = [f"{v:.{d}f}" for v in values]
        if all(a != b for a, b, x, y in zip(shown, shown[1:], values, values[1:]) if x != y):
            break
    return shown


def nbest_scores(candidates) -> list[tuple[str, str]]:
    """(score, log-prob) of each candidate of an n-best list, as its table prints them (``ranked_round``)."""
    return list(zip(ranked_round([c.normalized for c in candidates]), ranked_round([c.score for c in candidates])))


def plotly_text(text: str) -> str:
    """``text`` as Plotly prints it: its labels are HTML-like, so "</s>" would be read as a tag (and vanish)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

CSS = """
/* Gradio 6.31's SourceSansPro-SemiBold.woff2 is a 5 kB file that draws only "A", "B" and some Cyrillic, so every bold
   (600) text fell back to DejaVu Sans Bold, a size larger than the text around it, and a heading's first "A" came out
   thinner than the rest. Its full Bold face draws them all; declared for 600 exactly, it replaces the SemiBold face
   (of two faces with the same descriptors the last one declared is used) */
@font-face { font-family: "Source Sans Pro"; src: url("static/fonts/SourceSansPro/SourceSansPro-Bold.woff2") format("woff2");
             font-weight: 600; font-style: normal; }
@font-face { font-family: "Source Sans Pro"; src: url("static/fonts/SourceSansPro/SourceSansPro-Bold.woff2") format("woff2");
             font-weight: 700; font-style: normal; }
/* overflow-wrap: a "word" wider than the box breaks (an untrained model's sample has no spaces: on a phone it ran
   past the box's edge, cut off); break-spaces: a run of spaces wraps too (under pre-wrap it hung past the edge, and
   coloured by a unit's value it ran to the screen's edge) */
pre.generated { white-space: break-spaces; overflow-wrap: anywhere; font-family: ui-monospace, monospace; font-size: 14px;
                line-height: 1.5; padding: 12px; border-radius: 8px; min-height: 120px; }
pre.generated .prompt { font-weight: bold; }
pre.generated span[title] { cursor: pointer; }  /* iOS Safari sends a tap's click only to a "clickable" element */
.prob-legend { display: flex; align-items: center; gap: 8px; font-size: 12px; margin-top: 6px; }
.prob-legend .bar { flex: 1; max-width: 240px; height: 12px; border-radius: 3px; }
.prob-legend-hint { font-size: 12px; color: #777; }
#char-tip { position: absolute; z-index: 1000; max-width: 260px; padding: 6px 8px; border-radius: 6px;
            background: #222; color: #fff; font: 13px/1.4 ui-monospace, monospace; white-space: pre-line;
            pointer-events: none; }
#live-samples pre.generated { min-height: 0; max-height: 10em; overflow-y: auto; margin: 4px 0 0 0; }
#live-samples .live-sample { margin-bottom: 16px; overflow: hidden; }
.curves-note p { font-size: 13px; color: #666; margin: 0; }
.size-note p { font-size: 13px; margin: 0; }
.inside-table { overflow-x: auto; }
.inside-table table { border-collapse: collapse; font-size: 13px; }
.inside-table td, .inside-table th { padding: 2px 8px; border-bottom: 1px solid #8883; text-align: right; white-space: nowrap; }
.inside-table th { white-space: normal; vertical-align: bottom; }
.inside-table .sym { text-align: left; font-family: ui-monospace, monospace; white-space: normal; min-width: 8em; }
.inside-table .what { font-family: sans-serif; font-size: 11px; color: #777; }
.inside-table tr.stage td { border-top: 2px solid #8886; }
.user-message p { font-weight: 600; color: #b45309; margin: 0; }
/* Gradio hides a status it does not show (show_progress="hidden", or done) with opacity alone, so screen readers still
   read it: a cancelled run's "Error", nobody could see */
[data-testid="status-tracker"].hide { visibility: hidden; }
pre.generated.small { min-height: 0; font-size: 13px; margin: 2px 0 10px 0; padding: 8px; }
.inside-table th small { font-size: 12px; }
/* on a phone the arithmetic's units run past the screen: the quantities' column stays put while the table is swiped,
   and a line above says that it swipes (a newcomer saw a cut column and no sign of the rest) */
.inside-table td.sym, .inside-table th.sym { position: sticky; left: 0; z-index: 1;
                                            background: var(--background-fill-primary, #fff); }
.swipe-hint { display: none; font-size: 12px; color: #777; }
/* its header row stays at the top of the table's own box, which a phone bounds (below): a phone's table ran to
   1,670 px, and a newcomer scrolled past the units' names and lost which column was which */
.inside-table th { position: sticky; top: 0; z-index: 2; background: var(--background-fill-primary, #fff); }
.inside-table th.sym { top: 0; z-index: 3; }
/* "Which model?" (Text generation): compact type, so that a phone shows more of its nine columns */
.compare-table :is(table, .body-cell) { font-size: 12px !important; }
/* its model column stays put while the rest swipes (Gradio 6.31's pinned_columns pins nothing in this table): a
   newcomer's phone showed losses with no row names */
.compare-table th:first-child, .compare-table .body-cell[data-col="0"] { position: sticky; left: 0; z-index: 2;
                                                                  background: var(--background-fill-primary, #fff); }
/* the n-best tables (Translation, Image captioning): compact type; their widths below the string */
.nbest :is(table, .body-cell) { font-size: 12px !important; }
.nbest td, .nbest th { padding: 0 !important; }
.nbest .cell-wrap { padding: 4px !important; }
.nbest .cell-menu-button { display: none; }
/* a command in a Markdown code block wraps rather than running under the block's copy button */
.prose pre { padding-right: 2.5em !important; }
.prose pre code { white-space: pre-wrap; overflow-wrap: anywhere; }
/* the Train tab's loss plot: Vega draws its legend's labels at 10 px, and Gradio offers no setting for them; Vega
   spaced the entries for 10 px, and at 12 px "training batch" ran into the next entry's symbol */
#live-loss svg .role-legend-label text { font-size: 11px !important; }
/* its y-axis title, drawn sideways in a narrow gutter, read as a squashed glyph to a newcomer; the plot's label
   ("Loss (nats per character)") already says what the axis is */
#live-loss svg g[aria-label^="Y-axis"] .role-axis-title { display: none; }
/* the hints under a control's label (and the notes that say which value a slider used), and a slider's two ends:
   Gradio draws them in
   #bbbbc2 on white, a contrast of 1.9:1, and a newcomer missed them; these greys give 5:1 on either theme */
.info-text, .min_value, .max_value { color: #686873 !important; }
.dark :is(.info-text, .min_value, .max_value) { color: #a3a3ad !important; }
"""
# the "Inside the RNN" tab's seven views: with Gradio's padding a phone wrapped their names into five rows, a
# screenful of tabs above the view; closer together, they take three
CSS += (f"{_nbest_css()}\n@media (max-width: 640px) {{\n.nbest table {{ width: auto !important; }}\n"
        ".swipe-hint { display: block; }\n.inside-table { max-height: 70vh; overflow: auto; }\n"
        ".inside-table .sym { min-width: 6.5em; }\n"
        ".inside-table :is(td, th) { padding: 2px 4px; }\n.inside-table th small { font-size: 11px; }\n"
        ".inside-views > .tab-wrapper button[role=tab] { padding: 0 7px; font-size: 13px; }\n}\n")

# A tap on a touch screen shows no title tooltip, so a tap (or click) on a character of a pre.generated block (the
# Text generation tab's text, the "Inside the RNN" tab's shaded text) shows its title in a box under it; hover
# shows the same title as the browser's own tooltip. One listener on the document, because Gradio redraws the
# blocks on every streamed update.
HEAD = """<script>
document.addEventListener("click", (event) => {
  const char = event.target.closest && event.target.closest("pre.generated span[title]");
  let tip = document.getElementById("char-tip");
  if (!char) { if (tip) tip.hidden = true; return; }
  if (!tip) {
    tip = document.createElement("div");
    tip.id = "char-tip";
    tip.setAttribute("role", "status");
    document.body.appendChild(tip);
  }
  tip.textContent = char.title;
  tip.hidden = false;
  const box = char.getBoundingClientRect();
  const right = document.documentElement.clientWidth - tip.offsetWidth - 4;  // kept on screen
  tip.style.left = Math.max(4, Math.min(box.left, right)) + window.scrollX + "px";
  tip.style.top = box.bottom + window.scrollY + 4 + "px";
});
</script>"""
