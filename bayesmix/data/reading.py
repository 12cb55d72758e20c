"""Reading run tables from CSV, TSV and Parquet files."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import DataError
from .columns import refuse_repeated_columns
from .table import RunTable


def load_runs(path, *, mapping=None, model_size_column: str = "model_size", tokens_column: str = "n_tokens",
              run_id_column: str | None = None, require_losses: bool = True, weight_tolerance: float = 1e-2
              ) -> RunTable:
    """Read and check a run table.

    Parameters
    ----------
    path : str or Path
        A ``.csv``, ``.tsv`` or ``.parquet`` file (other suffixes are read as CSV),
        one row per (run, checkpoint).
    mapping : dict, optional
        Explicit columns per domain, ``{domain: (weight_col or None, loss_col or None)}``;
        a None weight column makes the domain evaluation-only. Default: found by the
        patterns ``weight_<d>`` with ``<d>_loss`` or ``loss_<d>``; a loss column with no
        weight column is an evaluation-only domain.
    model_size_column, tokens_column : str
        Columns with the model size ``N`` (parameters) and tokens ``D``.
    run_id_column : str, optional
        Column naming the training run of each row. Default: ``run_id`` if present,
        else rows are grouped into runs by mixture (weights rounded to 1e-9) and model
        size, with ids ``run-0001``, ... in order of first appearance.
    require_losses : bool
        If True at least one trained domain needs a loss column; a trained domain
        without one (as in RegMix's tables, which log fewer losses than they train
        domains) is kept with all losses missing and noted: it takes part in the
        mixture and the law but adds no likelihood term. False for inputs (a
        prediction grid), where loss columns are optional.
    weight_tolerance : float
        Rows whose weights sum to 1 within this are renormalised (and noted); others
        are an error.

    Returns
    -------
    RunTable
        The rows of the file, checked; its ``source`` is ``path`` as given.

    Raises
    ------
    DataError
        If the file is missing or unreadable or the table is malformed; the message
        names the file, column and first offending rows and says how to fix it.
    """
    p = Path(path).expanduser()
    source = str(path)
    if not p.exists():
        raise DataError(
            "file not found; check the path (run tables are .csv, .tsv or .parquet files)", file=source
        )
    if p.is_dir():
        raise DataError("is a directory; give the run table file inside it (e.g. runs.csv)", file=source)
    df = read_table(p, source)
    return RunTable.from_frame(df, source=source, mapping=mapping, model_size_column=model_size_column,
                               tokens_column=tokens_column, run_id_column=run_id_column,
                               require_losses=require_losses, weight_tolerance=weight_tolerance)


def read_table(p, source=None, *, empty_hint: str = "a run table needs a header line and one row per checkpoint"
               ) -> pd.DataFrame:
    """Read a CSV, TSV or Parquet file into a frame; any failure is a :class:`DataError`.

    Parameters
    ----------
    p : str or path-like
    source : str, optional
        The name shown in messages (default: the path).
    empty_hint : str
        What the file should hold, said when it is empty.

    Raises
    ------
    DataError
        If the file is empty, binary, not UTF-8 or cannot be parsed.
    """
    p = Path(p)
    source = source or str(p)
    suffixes = [s.lower() for s in p.suffixes]
    try:
        if suffixes and suffixes[-1] in (".parquet", ".pq"):
            try:
                return pd.read_parquet(p)
            except ImportError as err:
                raise DataError(
                    f"reading Parquet needs pyarrow ({err}); install it with pip install 'bayesmix[parquet]' "
                    "or save the table as CSV",
                    file=source,
                ) from None
        kwargs = {"skipinitialspace": True}
        if int(pd.__version__.split(".")[0]) < 3:  # pandas 3 parses floats exactly by default
            kwargs["float_precision"] = "round_trip"
        if ".tsv" in suffixes or ".tab" in suffixes:
            kwargs["sep"] = "\t"
        df = pd.read_csv(p, **kwargs)
        # pandas renames a repeated name to 'name.1'; the header line itself shows the repeat
        header = pd.read_csv(p, header=None, nrows=1, dtype=str, keep_default_na=False, **kwargs)
        refuse_repeated_columns(header.iloc[0].tolist() if len(header) else [], source)
        return df
    except DataError:
        raise
    except pd.errors.EmptyDataError:
        raise DataError(
            f"the file is empty: {empty_hint}", file=source
        ) from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as err:
        msg = " ".join(str(err).split())
        raise DataError(
            f"cannot read the table ({msg}); save it as UTF-8 CSV with one header line", file=source
        ) from None
    except Exception as err:  # pyarrow errors and the like
        msg = " ".join(str(err).split())
        raise DataError(f"cannot read the table ({type(err).__name__}: {msg})", file=source) from None
