"""The playground: a local web page to look inside any model (``chainrule serve``).

Views: next word, surprisal, attention, BPE, generate, ladder; each backed by a JSON API
(docs/playground.md). Starlette and uvicorn come with the ``web`` extra and are imported only
when the server starts.
"""

from chainrule.web.served import Limits, ServedModel, load_served

__all__ = ["Limits", "ServedModel", "create_app", "load_served"]


def create_app(*args, **kwargs):
    """The Starlette application; see :func:`chainrule.web.app.create_app`."""
    from chainrule.web.app import create_app as _create

    return _create(*args, **kwargs)
