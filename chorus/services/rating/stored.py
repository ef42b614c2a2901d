"""What rating models and rankers share as stored models: the interface the artifact writes and reads them through,
the registries of their classes derived from the spec table (:mod:`chorus.shared.contract.kinds`), and the one
loader that turns a component's arrays back into the class its recorded kind names.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, Self, TypeVar

import numpy as np

from chorus.shared.contract.errors import ArtifactError, InvalidInput
from chorus.shared.contract.kinds import KindSpec, resolve


class StoredModel(ABC):
    """A fitted model an artifact stores as named arrays and JSON-able metadata, and loads back by its kind.

    Attributes
    ----------
    kind : str
        The name of the model's :class:`~chorus.shared.contract.kinds.KindSpec`, recorded in the artifact.
    """

    kind: ClassVar[str]

    @abstractmethod
    def to_arrays(self) -> dict[str, np.ndarray]:
        """The arrays that make up the model, by name."""

    @abstractmethod
    def to_meta(self) -> dict[str, Any]:
        """What the artifact records beside the arrays (JSON-able), the kind among it."""

    @classmethod
    @abstractmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> Self:
        """The model back from :meth:`to_arrays` and :meth:`to_meta` output (arrays used as given, read-only ones
        included).

        Raises
        ------
        KeyError, IndexError, TypeError : a missing array or entry of ``meta``.
        InvalidInput : arrays that do not fit together.
        """

    @classmethod
    def class_of(cls, spec: KindSpec) -> type[Self]:
        """The class :attr:`KindSpec.model` names, imported: a subclass of this class whose ``kind`` is the spec's
        name.

        Raises
        ------
        TypeError : a class that is not one of this class, or of another kind.
        """
        named = resolve(spec.model)
        if not (isinstance(named, type) and issubclass(named, cls)):
            raise TypeError(f"kind {spec.name!r}: {spec.model} is not a {cls.__name__}")
        if named.kind != spec.name:
            raise TypeError(f"kind {spec.name!r}: {spec.model} has kind {named.kind!r}")
        return named

    @classmethod
    def registry(cls, specs: Iterable[KindSpec]) -> dict[str, type[Self]]:
        """kind -> class of every served kind of ``specs``, in their order (:meth:`class_of` of each)."""
        return {spec.name: cls.class_of(spec) for spec in specs if spec.served}


M = TypeVar("M", bound=StoredModel)


def load_stored(
    classes: Mapping[str, type[M]],
    kind: str,
    arrays: Callable[[], Mapping[str, np.ndarray]],
    meta: Mapping[str, Any],
    *,
    found: str,
    subject: str,
) -> M:
    """The model of ``kind`` from a component: ``classes[kind].from_arrays(arrays(), meta)``.

    Parameters
    ----------
    classes : mapping
        A registry (:meth:`StoredModel.registry`): the kinds this build serves.
    kind : str
        The kind the component records.
    arrays : callable
        Reads the model's arrays, by name (its errors are reported as an incomplete component).
    meta : mapping
        The model's metadata, as :meth:`StoredModel.to_meta` wrote it.
    found : str
        Where the kind was found and what it is, for the error about an unknown kind ("rating component of version
        v1 holds a 'neural' model").
    subject : str
        The model, for the other errors ("ease ranker of version v1").

    Raises
    ------
    ArtifactError : an unknown kind, a missing array or entry, or arrays that do not fit together.
    """
    if kind not in classes:
        raise ArtifactError(f"{found}; this build serves {', '.join(classes)}")
    try:
        return classes[kind].from_arrays(arrays(), meta)
    except (KeyError, IndexError, TypeError) as exc:
        raise ArtifactError(f"{subject} is incomplete: {exc}") from exc
    except InvalidInput as exc:
        raise ArtifactError(f"{subject}: {exc.detail}") from exc
