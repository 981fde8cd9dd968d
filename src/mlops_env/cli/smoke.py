"""`mlops-env smoke-test`: train the course's ride-duration model here or on a workstation.

Heavy imports (pandas, scipy) happen inside the command body, never at CLI start-up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from mlops_env.cli import Command, app, complete_name, run_command, state
from mlops_env.errors import UsageError

DEFAULT_FEATURES = "PU_DO,trip_distance"


@app.command("smoke-test", cls=Command, short_help="Train the course's week-1 model as a smoke test.", epilog="""
    mlops-env smoke-test course               # on a workstation, in its conda env
    mlops-env smoke-test --sample             # here, on synthetic data (no download)
    mlops-env smoke-test --train a.parquet --val b.parquet --features PU_DO,trip_distance
    """)
def smoke_test(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(
        metavar="NAME", show_default=False, autocompletion=complete_name,
        help="Workstation to run on (over SSH, in its conda env). Without it: run here.")] = None,
    train: Annotated[str | None, typer.Option(
        "--train", metavar="SRC",
        help="Training data: URL or parquet path [default: TLC green 2021-01].")] = None,
    val: Annotated[str | None, typer.Option(
        "--val", metavar="SRC",
        help="Validation data: URL or parquet path [default: TLC green 2021-02].")] = None,
    features: Annotated[str, typer.Option(
        "--features", metavar="LIST",
        help="Comma-separated features; PU_DO = PULocationID_DOLocationID.")] = DEFAULT_FEATURES,
    sample: Annotated[bool, typer.Option(
        "--sample", help="Deterministic synthetic data (no download; offline boxes).")] = False,
    report_dir: Annotated[Path | None, typer.Option(
        "--report-dir", metavar="DIR",
        help="Where the report and model go [default: <data dir>/reports/local].")] = None,
    serve: Annotated[bool, typer.Option(
        "--serve", help="Then serve the model on the box: docker build, compose up on "
        "127.0.0.1:9696, check 200 predictions there and one through the SSH connection.")] = False,
    serve_base_image: Annotated[str, typer.Option(
        "--serve-base-image", metavar="IMAGE",
        help="Base image (with python3) of the service's image: a mirror or a local image.")] = "python:3.11-slim",
    serve_port: Annotated[int, typer.Option(
        "--serve-port", metavar="PORT", help="Port the service is published on (box loopback).")] = 9696,
    keep_serving: Annotated[bool, typer.Option(
        "--keep-serving", help="With --serve: leave the service running and print its URL.")] = False,
) -> None:
    """Train the MLOps Zoomcamp week-1 model (ride duration, linear regression) as a smoke test."""
    st = state(ctx)

    def body(ui: Any) -> dict[str, Any]:
        from mlops_env.smoke import ridetrain
        from mlops_env.smoke.local import ridetrain_args, run_local

        args = ridetrain_args(train=train, val=val, features=features, sample=sample)
        serve_opts = None
        if (keep_serving or serve_base_image != "python:3.11-slim" or serve_port != 9696) and not serve:
            raise UsageError("--keep-serving, --serve-base-image and --serve-port need --serve",
                             hint="add --serve")
        if serve:
            from mlops_env.smoke.serve import ServeOptions

            if not name:
                raise UsageError("--serve runs on a workstation: give its NAME",
                                 hint="mlops-env smoke-test NAME --serve")
            serve_opts = ServeOptions(base_image=serve_base_image, port=serve_port, keep=keep_serving)
        if name:
            if report_dir is not None:
                from mlops_env.paths import get_paths

                raise UsageError(
                    "--report-dir applies to local runs only",
                    hint=f"a workstation's report is brought back to {get_paths().reports_dir / name}")
            from mlops_env.smoketest import run_on_workstation

            extra = {"serve": serve_opts} if serve_opts is not None else {}
            data = run_on_workstation(name=name, args=args, ui=ui, **extra)
        else:
            from mlops_env.paths import get_paths

            paths = get_paths()
            data = run_local(train=train, val=val, features=features, sample=sample,
                             report_dir=report_dir or paths.reports_dir / "local",
                             cache_dir=paths.cache / "tlc", ui=ui)
        if not st.json_mode and isinstance(data, dict):
            try:
                ui.out.print(ridetrain.summary(data), markup=False, highlight=False,
                             soft_wrap=True)
                if isinstance(data.get("serve"), dict):
                    from mlops_env.smoke.serve import summary as serve_summary

                    ui.out.print(serve_summary(data["serve"]), markup=False, highlight=False,
                                 soft_wrap=True)
            except (KeyError, TypeError, ValueError):
                pass  # a remote result of another shape: the envelope still carries it
        return data

    run_command(ctx, "smoke-test", body)
