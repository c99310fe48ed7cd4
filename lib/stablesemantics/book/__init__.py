"""The book: run the notebooks with papermill and stage the sources (:mod:`stablesemantics.book.runner`),
the notebooks' shared plumbing (headline numbers and glue: :mod:`stablesemantics.book.glue`; Colab set-up:
:mod:`stablesemantics.book.colab`).

``stablesemantics book list | params | run | stage`` (or ``python -m stablesemantics.book ...``).
"""

from stablesemantics.book.colab import REPOSITORY_URL, setup_colab
from stablesemantics.book.glue import (
    clean_json,
    merge_injected_parameters_file,
    model_note,
    round_number,
    write_headline,
)
from stablesemantics.book.runner import (
    BUILD,
    PARAMS_DIR,
    ROOT,
    glue_text,
    load_params,
    main,
    resolve_notebook,
    run_notebook,
    stage,
    toc_files,
    toc_notebooks,
)

__all__ = [
    "BUILD",
    "PARAMS_DIR",
    "REPOSITORY_URL",
    "ROOT",
    "clean_json",
    "glue_text",
    "load_params",
    "main",
    "merge_injected_parameters_file",
    "model_note",
    "resolve_notebook",
    "round_number",
    "run_notebook",
    "setup_colab",
    "stage",
    "toc_files",
    "toc_notebooks",
    "write_headline",
]
