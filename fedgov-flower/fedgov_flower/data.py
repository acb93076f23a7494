"""The site's data contract: keep only the records a round's ticket permits, and say so.

fedgov's ticket names, per site, the subjects to leave out and, for consent-based data,
the only subjects the site may use (the allow-list: consent valid at the round's
instant, GDPR Art. 6(1)(a) and 7(3)). The handler filters its own records with one of
these helpers; each helper also tells the grant which subjects it kept
(``Grant.use``), so the mod can report the digest of the list applied and of the
subjects used, and fedgov can refuse a round that did not apply the ticket's list.

    grant = fedgov_flower.current_grant()
    records = fedgov_flower.data.filter_records(load_my_records(), grant, key="subject")

No Django; torch and pandas are imported only when a torch Dataset or a pandas frame is
passed (a site installs what its app uses).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from fedgov_flower.client_mod import Grant, current_grant


def _subject_of(record: Any, key: str | Callable[[Any], Any]) -> str:
    if callable(key):
        return str(key(record))
    if isinstance(record, Mapping):
        return str(record[key])
    return str(getattr(record, key))


def filter_records(
    records: Iterable[Any],
    grant: Grant | None = None,
    *,
    key: str | Callable[[Any], object] = "subject",
) -> list[Any]:
    """The records whose subject (``record[key]``, ``record.key`` or ``key(record)``) the
    ticket permits; declares the kept subjects and counts to the grant."""
    grant = grant or current_grant()
    kept, subjects, left_out = [], [], 0
    for record in records:
        subject = _subject_of(record, key)
        if grant.permits(subject):
            kept.append(record)
            subjects.append(subject)
        else:
            left_out += 1
    grant.use(subjects, records=len(kept), left_out=left_out)
    return kept


def filter_dataset(dataset: Any, grant: Grant | None = None, *, subjects: Any = "subject") -> Any:
    """A ``torch.utils.data.Subset`` of ``dataset`` with only the permitted subjects' items.

    ``subjects`` is the subject of each item, in order: a sequence, or the name of a
    column/attribute of the dataset (``dataset.subject``, ``dataset["subject"]`` for a
    Hugging Face dataset), or of a key in each item (``dataset[i]["subject"]``).
    """
    from torch.utils.data import Subset

    grant = grant or current_grant()
    column = _column(dataset, subjects)
    keep = [i for i, subject in enumerate(column) if grant.permits(str(subject))]
    grant.use((str(column[i]) for i in keep), records=len(keep), left_out=len(column) - len(keep))
    return Subset(dataset, keep)


def _column(dataset: Any, subjects: Any) -> list[Any]:
    if not isinstance(subjects, str):
        column = list(subjects)
    elif hasattr(dataset, subjects):
        column = list(getattr(dataset, subjects))
    else:
        try:
            column = list(dataset[subjects])
        except (KeyError, TypeError, IndexError):
            column = [dataset[i][subjects] for i in range(len(dataset))]
    if len(column) != len(dataset):
        raise ValueError(f"{len(column)} subject ids for {len(dataset)} items")
    return column


def filter_frame(frame: Any, grant: Grant | None = None, *, column: str = "subject") -> Any:
    """The rows of a pandas ``DataFrame`` whose ``column`` the ticket permits (a copy)."""
    grant = grant or current_grant()
    subjects = frame[column].astype(str)
    mask = subjects.map(grant.permits).astype(bool)
    kept = frame[mask.to_numpy()].copy()
    grant.use(subjects[mask].tolist(), records=int(mask.sum()), left_out=int((~mask).sum()))
    return kept


__all__ = ["filter_dataset", "filter_frame", "filter_records"]
