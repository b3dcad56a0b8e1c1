"""Load pretrained models through `from_pretrained`, turning offline failures into one clear line.

Order: a local folder as given; else the Hugging Face cache without touching the network; else,
only if the Hub answers a quick connection probe, a normal download. This avoids the minute-long
retry loop huggingface_hub runs when there is no network at all.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import urllib.request
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlparse

from safetensors import SafetensorError

from sbsconvert.errors import SbsError, first_line

PROBE_TIMEOUT_S = 3.0
# Besides missing files and bad JSON: a corrupt weights file (SafetensorError) and weights that do
# not fit the config (RuntimeError from transformers' size check).
_LOAD_ERRORS = (OSError, ValueError, KeyError, RuntimeError, SafetensorError)


def is_local_folder(name_or_path: str) -> bool:
    return Path(name_or_path).expanduser().is_dir()


def load_pretrained(
    loader: Callable[..., Any], name_or_path: str, *, what: str, alternatives: str, **kwargs: Any
) -> Any:
    """Call `loader` (a `from_pretrained`) on a local folder or hub id, explaining failures.

    `what` names the model in messages ("depth model"); `alternatives` tells the user what else
    they can do, e.g. "pass --disparity FILE".
    """
    _quiet_weight_loading()
    if is_local_folder(name_or_path):
        try:
            return loader(str(Path(name_or_path).expanduser()), **kwargs)
        except _LOAD_ERRORS as error:
            raise SbsError(f"cannot load {what} from folder '{name_or_path}': {first_line(error)}") from None
    if _looks_like_path(name_or_path):
        raise SbsError(f"{what} folder '{name_or_path}' does not exist")
    try:
        return loader(name_or_path, local_files_only=True, **kwargs)
    except _LOAD_ERRORS:
        pass
    if _offline_requested() or not hub_reachable():
        raise SbsError(
            f"{what} '{name_or_path}' is not in the Hugging Face cache ({hub_cache()}) and the Hub "
            f"cannot be reached; download it on a connected machine, give a local folder instead, "
            f"or {alternatives}"
        )
    try:
        return loader(name_or_path, **kwargs)
    except _LOAD_ERRORS as error:
        raise SbsError(f"cannot download {what} '{name_or_path}': {first_line(error)}") from None


def hub_cache() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


@functools.cache
def hub_reachable() -> bool:
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    # Behind a proxy (HTTPS_PROXY...) the Hub is only reached through it: probe the proxy instead.
    proxy = urllib.request.getproxies().get(endpoint.scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        proxy_url = urlparse(proxy if "://" in proxy else f"http://{proxy}")
        host, port = proxy_url.hostname or host, proxy_url.port or 80
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def _offline_requested() -> bool:
    return any(os.environ.get(name, "").lower() in ("1", "true", "yes") for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _looks_like_path(name: str) -> bool:
    # Hub ids are "owner/name" or "name"; anything starting like a path or deeper is a path.
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or (os.sep != "/" and os.sep in name)


def _quiet_weight_loading() -> None:
    """transformers and diffusers draw a bar of their own while reading weights from disk: noise on
    the terminal of a --quiet run and in front of --json output, for a second or two of work."""
    import importlib

    for library in ("transformers", "diffusers"):
        with contextlib.suppress(ImportError, AttributeError):
            importlib.import_module(f"{library}.utils.logging").disable_progress_bar()
