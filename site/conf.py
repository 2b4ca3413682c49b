"""Sphinx configuration of the course site (`make site`; tools/site.py stages the sources).

The notebooks are rendered with their committed outputs, never re-executed: those outputs
are the ones `make test` checks. Everything the pages need (theme, fonts, search) comes
from installed packages: the site builds, and reads, with no network.
"""

project = "Async database connections, the hands-on course"
author = "the course's authors"
extensions = ["myst_nb", "sphinx_copybutton"]
nb_execution_mode = "off"  # render the stored, checked outputs
nb_output_stderr = "show"  # echo=True logs and warnings are part of the lesson
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3
suppress_warnings = ["mystnb.unknown_mime_type"]
exclude_patterns = ["_build"]
html_theme = "sphinx_book_theme"
html_title = "Async database connections"
html_theme_options = {
    "show_navbar_depth": 1,
    "show_toc_level": 2,
    "use_download_button": True,
    "home_page_in_toc": True,
}
html_last_updated_fmt = None
html_copy_source = False
copybutton_prompt_text = ""
