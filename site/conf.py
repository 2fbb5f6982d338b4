"""Sphinx configuration of the course website (``make site``; staged and built by ``site/build.py``).

Offline by design: notebooks are rendered from their committed outputs (never executed), MathJax is served
from the site itself (sphinx-mathjax-offline), no widget JavaScript from a CDN, and the theme's links to
external hosts (repository, launch and edit buttons, "built with" footers) are switched off.
"""
project = "medxai"
author = "the medxai authors"
copyright = "the medxai authors"

extensions = ["myst_nb", "sphinx-mathjax-offline"]
root_doc = "index"
exclude_patterns = ["_build", "jupyter_execute", "**.ipynb_checkpoints"]
source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}

# notebooks: committed outputs only
nb_execution_mode = "off"
nb_ipywidgets_js = {}                 # no require.js / widget manager from a CDN
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

html_theme = "sphinx_book_theme"
html_title = "medxai: explainable deep learning for medical imaging"
html_static_path = ["_static"]
html_css_files = ["solutions.css"]
html_copy_source = False              # no copies of the notebooks (with their images) under _sources/
html_show_sourcelink = False
html_show_sphinx = False
html_last_updated_fmt = None
html_theme_options = {
    "use_download_button": False,     # links to _sources/, which is not copied
    "use_fullscreen_button": True,
    "use_repository_button": False,
    "use_edit_page_button": False,
    "use_issues_button": False,
    "use_source_button": False,
    "repository_url": "",
    "launch_buttons": {},
    "icon_links": [],
    "extra_footer": "",
    "footer_content_items": [],
    "show_toc_level": 2,
    "navigation_with_keys": False,
}
