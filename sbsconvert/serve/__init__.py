"""`sbsconvert serve`: a web page to convert, then view, in a headset's own browser (WebXR) or on a
flat screen. The command is light to import; the server (Starlette, uvicorn: the `serve` extra)
is imported when it starts."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import click

from sbsconvert.choices import DISPARITY_KINDS
from sbsconvert.errors import SbsError, run_command

DEFAULT_PORT = 8000


def default_state_folder() -> Path:
    return Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state") / "sbsconvert" / "serve"


@click.command("serve", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("folders", metavar="[FOLDER]...", nargs=-1,
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on. 127.0.0.1: this computer "
              "only; 0.0.0.0 (or this computer's address): the home network, e.g. a headset, with an access token.")
@click.option("--port", type=click.IntRange(1, 65535), default=DEFAULT_PORT, show_default=True, help="Port to listen on.")
@click.option("--token-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Read the access token from this file instead of making a new one at each start.")
@click.option("--state", "state_folder", type=click.Path(file_okay=False, path_type=Path),
              help="Folder of the server's own files: the job queue, uploads, converted files, previews, thumbnails "
              "[default: $XDG_STATE_HOME/sbsconvert/serve].")
@click.option("--disparity", "disparity_path", type=click.Path(exists=True, path_type=Path),
              help="Disparity maps for every job instead of a depth model: a folder of maps named like the photos "
              "(as the convert command's --disparity).")
@click.option("--disparity-kind", type=click.Choice(DISPARITY_KINDS), help="What the --disparity maps hold "
              "[default: relative].")
@click.option("--device", type=click.Choice(["auto", "cuda", "mps", "cpu"]), help="Where models run [default: auto].")
@click.option("--max-upload-mb", type=click.IntRange(1, None), default=4096, show_default=True,
              help="Largest file a page may upload.")
@click.option("--certfile", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="TLS certificate (PEM): serve https, which headset browsers need for WebXR on the network.")
@click.option("--keyfile", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="TLS private key (PEM) of --certfile.")
def serve_command(folders: tuple[Path, ...], host: str, port: int, token_file: Path | None,
                  state_folder: Path | None, disparity_path: Path | None, disparity_kind: str | None,
                  device: str | None, max_upload_mb: int, certfile: Path | None, keyfile: Path | None) -> None:
    """Serve FOLDER... (read-only) and a page to convert and view them: drop or pick photos and
    videos, choose a preset or format, watch the queue, then view the results flat (anaglyph,
    wiggle, cross-eye, a left/right slider) or in a headset (Enter VR, WebXR).

    Prints the page's URL and a QR code for a headset to scan. Outside this computer (--host other
    than 127.0.0.1) every request needs the access token the URL carries. See docs/serve.md.

    \b
    Examples:
      sbsconvert serve ~/Pictures/stereo                  # http://127.0.0.1:8000/
      sbsconvert serve ~/Videos/3d --host 0.0.0.0 --certfile cert.pem --keyfile key.pem
    """
    run_command(lambda: _serve(folders, host, port, token_file, state_folder, disparity_path, disparity_kind, device,
                               max_upload_mb, certfile, keyfile))


def _serve(folders: tuple[Path, ...], host: str, port: int, token_file: Path | None, state_folder: Path | None,
           disparity_path: Path | None, disparity_kind: str | None, device: str | None, max_upload_mb: int,
           certfile: Path | None, keyfile: Path | None) -> int:
    if (certfile is None) != (keyfile is None):
        raise SbsError("--certfile and --keyfile go together")
    try:
        import segno
        import uvicorn

        from sbsconvert.serve.app import ServeConfig, create_app, is_loopback, new_token
    except ImportError as error:
        raise SbsError(f"serve needs the serve extra: pip install 'sbsconvert[serve]' ({error.name} is missing)") from None
    token = None
    if not is_loopback(host):
        token = token_file.read_text().strip() if token_file is not None else new_token()
        if len(token) < 16:
            raise SbsError(f"{token_file}: the token must be at least 16 characters")
    values = {name: value for name, value in (("disparity", disparity_path and str(disparity_path.resolve())),
                                              ("disparity_kind", disparity_kind), ("device", device)) if value}
    config = ServeConfig(folders=list(folders), state=(state_folder or default_state_folder()).resolve(), host=host,
                         token=token, values=values, max_upload_bytes=max_upload_mb << 20)
    app = create_app(config)
    url = f"{'https' if certfile else 'http'}://{_shown_host(host)}:{port}/" + (f"?token={token}" if token else "")
    click.echo(f"sbsconvert serve: open {url}")
    click.echo(f"  folders: {', '.join(str(folder) for folder in folders) or '(none: uploads only)'}; "
               f"state: {config.state}")
    segno.make(url, error="m").terminal(compact=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", ssl_certfile=certfile and str(certfile),
                ssl_keyfile=keyfile and str(keyfile))
    return 0


def _shown_host(host: str) -> str:
    """The address a headset on the network uses: this computer's, for a bind to every address."""
    if host not in ("0.0.0.0", "::"):
        return f"[{host}]" if ":" in host else host
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # picks the outgoing interface; sends nothing
            return probe.getsockname()[0]
        except OSError:
            return socket.gethostname()

