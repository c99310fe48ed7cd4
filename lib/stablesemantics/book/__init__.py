"""Run the book's notebooks with papermill and stage the book sources.

Used by the Makefile (`make book`, `make notebook`); also handy on its own:

    python -m stablesemantics.book list                          # notebooks named in _toc.yml
    python -m stablesemantics.book params 01_generate smoke      # that notebook's smoke parameters, as YAML
    python -m stablesemantics.book run --params smoke 01_generate
    python -m stablesemantics.book run --params smoke 01_generate -- -p steps 4   # after --: papermill options
    python -m stablesemantics.book stage                         # _build/src for `jupyter-book build`

Parameter files (notebooks/params/{default,smoke,colab}.yaml) have one section per
notebook, keyed by the notebook's file stem:

    01_generate:
      n_seeds: 2
      steps: 10

`run` records each notebook's wall time in <out>/timings.json. It writes the section to _build/params/<stem>.<set>.yaml and calls
`papermill <notebook> _build/notebooks/<stem>.ipynb -f <that file> --cwd <repo root>`,
printing the command so it can be copied and changed (add `-p name value` to override
one parameter). A notebook without a section runs with its own defaults.

`stage` assembles _build/src: _config.yml, _toc.yml, book/ and the benchmark tables
(benchmarks/results/*.md, which book pages include) copied from the repository, and at every notebook path named in the toc the *executed* notebook from _build/notebooks.
The committed notebooks stay output-free, the book shows outputs, and because the staged
paths equal the repository paths the Colab launch buttons open the real notebooks/ files.
"""

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
    "ROOT",
    "glue_text",
    "load_params",
    "main",
    "resolve_notebook",
    "run_notebook",
    "stage",
    "toc_files",
    "toc_notebooks",
]
