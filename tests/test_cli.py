from pathlib import Path

import av
from typer.testing import CliRunner

from fractal.cli import app

runner = CliRunner()


def test_render_writes_a_playable_mp4(tmp_path: Path) -> None:
    output = tmp_path / "julia.mp4"
    result = runner.invoke(
        app,
        [
            "render",
            "--c=-0.8,-0.18",
            "--width",
            "96",
            "--height",
            "64",
            "--frames",
            "12",
            "--fps",
            "12",
            "--colormap",
            "twilight",
            "--supersample",
            "2",
            "-o",
            str(output),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "12 frames, 1.000 s, 96x64" in result.output
    with av.open(str(output)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height, stream.frames) == (96, 64, 12)


def test_render_rejects_bad_input_with_the_field_and_range(tmp_path: Path) -> None:
    output = tmp_path / "never.mp4"
    result = runner.invoke(
        app, ["render", "--width", "801", "--max-iter", "0", "--c=nan,0", "-o", str(output)]
    )
    assert result.exit_code == 2
    assert "width: must be an even number from 16 to 3840, got 801" in result.output
    assert "max_iter: must be a number from 1 to 100000, got 0" in result.output
    assert "c.re:" in result.output
    assert not output.exists()


def test_render_paths_from_flags(tmp_path: Path) -> None:
    output = tmp_path / "line.mp4"
    result = runner.invoke(
        app,
        [
            "render",
            "--path",
            "keyframes",
            "--points",
            "0.3,0.5;-0.4,0.6",
            "--width",
            "32",
            "--height",
            "32",
            "--duration",
            "0.5",
            "--fps",
            "8",
            "-o",
            str(output),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "4 frames" in result.output


def test_render_refuses_an_unwritable_output_before_rendering(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder" / "julia.mp4"
    result = runner.invoke(app, ["render", "--frames", "2", "-o", str(missing)])
    assert result.exit_code == 2
    assert f"folder {missing.parent} does not exist" in result.output
    result = runner.invoke(app, ["render", "--frames", "2", "-o", str(tmp_path)])
    assert result.exit_code == 2 and "is a directory" in result.output


def test_every_spec_field_is_an_option_of_render_and_submit() -> None:
    import typer.main

    from fractal.spec import AnimationSpec, KeyframesPath, LinePath, RotatePath

    fields = set(AnimationSpec.model_fields)
    for variant in (RotatePath, LinePath, KeyframesPath):
        fields |= set(variant.model_fields) - {"kind"}
    wanted = {"--" + name.replace("_", "-") for name in fields}
    group = typer.main.get_command(app)
    for name in ("render", "submit"):
        command = group.commands[name]  # type: ignore[attr-defined]
        options = {flag for parameter in command.params for flag in parameter.opts}
        assert wanted <= options, (name, wanted - options)
        width = next(p for p in command.params if "--width" in p.opts)
        assert "16..3840" in (width.help or "") and "800" in (width.help or "")


def test_points_alone_imply_a_line_path(tmp_path: Path) -> None:
    from fractal.cli.spec_options import merge_spec_fields, spec_fields_from_options

    fields = spec_fields_from_options({"points": "0.3,0.5;0.1,0.2", "width": 64})
    assert fields == {"width": 64, "path": {"kind": "line", "points": ["0.3,0.5", "0.1,0.2"]}}
    base = {"path": {"kind": "keyframes", "points": [[1, 1]]}, "width": 32}
    merged = merge_spec_fields(base, {"path": {"points": ["0,0"]}})
    assert merged == {"path": {"kind": "keyframes", "points": ["0,0"]}, "width": 32}
