"""The input shape: image size and colour, audio spectrogram, sensor window and channels.

What the request states wins; a CSV's header gives the feature count; anything else is a usual
default for the task on a microcontroller, said in an assumption.
"""

from __future__ import annotations

from tinyforge.boards import Board, has_camera
from tinyforge.plan.offline.columns import CsvHead
from tinyforge.plan.offline.lexicon import lexicon
from tinyforge.plan.offline.tasks import cue_score
from tinyforge.plan.offline.text import NUM, Assume, rx, to_float, to_int
from tinyforge.spec import Dataset, DatasetKind, Task

_LEX = lexicon()

_RESOLUTION = rx(
    r"(?<![\w.])(\d{1,4})\s*(?:x|×|\*|by)\s*(\d{1,4})(?:\s*(?:x|×|\*|by)\s*(\d{1,2}))?"
    r"(?:\s*(?:px|pixels?))?(?![\w.]|\s*(?:x|×|by)\s*\d)"
)
_SQUARE = rx(r"(?<![\w.])(\d{1,4})\s*(?:px|pixels?)\b(?!\s*(?:x|×|by)\b)")
_GRAY = _LEX.cue("shapes.gray")
_COLOUR = _LEX.cue("shapes.colour")
_AXES = rx(rf"(?<![\w.])({NUM})[\s-]*(?:axis|axes|dof|d\.o\.f\.?|degrees?\s+of\s+freedom)\b")
_XYZ = rx(r"\bx\s*[,/]?\s*y\s*(?:,|/|and)?\s*z\b|\bxyz\b|\btri-?axial\b")
_WINDOWS_OF = rx(rf"\bwindows?\s+(?:of|with|length(?:\s+of)?|size(?:\s+of)?)\s+({NUM})\b")
_SAMPLES = rx(
    rf"(?<![\w.])({NUM})[\s-]*(?:samples?|readings?|time[\s-]*steps?|timesteps?|points?|frames?)\b"
)
_WINDOW_CONTEXT = _LEX.cue("shapes.window_context")
_RATE = rx(
    r"(?<![\w.])(\d{1,6}(?:\.\d+)?)\s*(k)?(?:hz|hertz|samples?\s*(?:/|per)\s*(?:s|sec|second))\b"
)
_DURATION = rx(
    rf"(?<![\w.])(\d{{1,4}}(?:\.\d+)?|{NUM}|half\s+a)[\s-]*(ms|milliseconds?|s|secs?|seconds?)\b"
    r"(?!\s*/)"
)
_FEATURES = rx(
    rf"(?<![\w.])({NUM})\s+(?:numeric\s+|numerical\s+|input\s+|sensor\s+)?(?:features?|inputs?"
    r"|values|columns|variables|channels|measurements|sensors|readings\s+per\s+row)\b"
)
_COLOUR_SENSOR = _LEX.cue("shapes.colour_sensor")
_RGBC = _LEX.cue("shapes.rgbc")
# Quantities a sensor input measures, in order: one input value each.
_QUANTITIES = _LEX.named_cues("shapes.quantities", "name")
_MOTION_CUE = _LEX.cue("shapes.motion")
_GYRO = _LEX.cue("shapes.gyro")
_MAGNETO = _LEX.cue("shapes.magneto")
_CAMERA_CUE = _LEX.cue("data.camera")
_MEL_BINS = rx(
    rf"(?<![\w.])({NUM})\s*(?:mel|mfccs?|mel[\s-]*bins|filter[\s-]*banks?"
    r"|frequency\s+bins|bins)\b"
)
_AUDIO_FRAMES = rx(rf"(?<![\w.])({NUM})\s*(?:time\s+)?frames\b")


def input_shape(
    task: Task,
    masked: str,
    dataset: Dataset,
    head: CsvHead | None,
    board: Board,
    inputs: list[str],
    assume: Assume,
) -> list[int]:
    """The input shape of the model the request asks for."""
    if dataset.kind is DatasetKind.DIGITS:
        stated = _RESOLUTION.search(masked)
        if stated and (stated.group(1), stated.group(2)) != ("8", "8"):
            assume(
                "The built-in digits dataset is 8x8 grayscale, so the stated image "
                "size is not used."
            )
        return [8, 8, 1]
    if task is Task.IMAGE_CLASSIFICATION:
        return _image_shape(masked, board, assume)
    if task is Task.KEYWORD_SPOTTING:
        return _audio_shape(masked, assume)
    if (
        task is Task.ANOMALY_DETECTION
        and dataset.kind is DatasetKind.FOLDER
        and cue_score(Task.IMAGE_CLASSIFICATION, masked) > 0
    ):
        return _image_shape(masked, board, assume)
    return _sensor_shape(masked, dataset, head, inputs, assume)


def _image_shape(masked: str, board: Board, assume: Assume) -> list[int]:
    camera = _CAMERA_CUE.search(masked) is not None or has_camera(board)
    channels: int | None = None
    size: tuple[int, int] | None = None
    res = _RESOLUTION.search(masked)
    if res is not None:
        height, width = int(res.group(1)), int(res.group(2))
        if height > 0 and width > 0:
            size = (height, width)
            if res.group(3) and int(res.group(3)) in (1, 3):
                channels = int(res.group(3))
    if size is None:
        square = _SQUARE.search(masked)
        if square is not None and int(square.group(1)) > 0:
            side = int(square.group(1))
            size = (side, side)
    if channels is None:
        gray, colour = _GRAY.search(masked), _COLOUR.search(masked)
        if gray and (not colour or gray.start() <= colour.start()):
            channels = 1
        elif colour:
            channels = 3
    if size is None:
        side = 96 if camera else 32
        size = (side, side)
        why = "a camera model" if camera else "small images"
        assume(
            f"No image size given: assumed {side}x{side} pixels, a usual size for "
            f"{why} on a microcontroller."
        )
    if channels is None:
        channels = 1 if camera else 3
        kind = "grayscale" if channels == 1 else "RGB colour"
        assume(
            f"No colour mode given: assumed {kind} ({channels} channel"
            f"{'s' if channels > 1 else ''})."
        )
    return [size[0], size[1], channels]


def _audio_shape(masked: str, assume: Assume) -> list[int]:
    frames, bins = 49, 40
    stated_bins = _MEL_BINS.search(masked)
    stated_frames = _AUDIO_FRAMES.search(masked)
    if stated_bins and (value := to_int(stated_bins.group(1))):
        bins = value
    if stated_frames and (value := to_int(stated_frames.group(1))):
        frames = value
    if not stated_bins or not stated_frames:
        assume(
            f"Audio input assumed to be a {frames}x{bins} spectrogram: 1 s clips at "
            f"16 kHz in 30 ms frames every 20 ms, {bins} mel bins (the TFLM "
            "micro_speech layout)."
        )
    return [frames, bins, 1]


def _sensor_shape(
    masked: str, dataset: Dataset, head: CsvHead | None, inputs: list[str], assume: Assume
) -> list[int]:
    window = _window(masked)
    axes = _axes(masked)
    features = None
    if (m := _FEATURES.search(masked)) is not None:
        features = to_int(m.group(1))
    if head is not None:
        label = (dataset.label_column or "").lower()
        count = sum(1 for h in head.header if h.lower() != label)
        if count > 0:
            if window and axes and window * axes == count:
                return [window, axes]
            if features is not None and features != count:
                assume(
                    f"The request says {features} features but {dataset.path} has "
                    f"{count} feature columns: using {count}."
                )
            return [count]
    if window is not None or (axes is not None and dataset.kind is not DatasetKind.CSV):
        return [window or _default_window(assume), axes or _default_axes(masked, assume)]
    if features is not None and features > 0:
        return [features]
    if axes is not None:
        return [axes]
    if _COLOUR_SENSOR.search(masked):
        channels = 4 if _RGBC.search(masked) else 3
        assume(
            f"Colour sensor input assumed to be {channels} values per reading "
            f"({'R, G, B, clear' if channels == 4 else 'R, G, B'})."
        )
        return [channels]
    if inputs:
        assume(
            f"Inputs: {', '.join(inputs)}, one value each; the CSV's columns of the "
            "same names are used when the build reads it."
        )
        return [len(inputs)]
    quantities = [q.name for q in _QUANTITIES if q.pattern.search(masked)]
    if quantities and not _MOTION_CUE.search(masked):
        assume(f"Input assumed to be one value per quantity named ({', '.join(quantities)}).")
        return [len(quantities)]
    if dataset.kind is not DatasetKind.CSV and _MOTION_CUE.search(masked):
        return [_default_window(assume), _default_axes(masked, assume)]
    assume(
        "The number of input features is unknown until the CSV file can be read: "
        "input_shape is a placeholder [1]; set it to the number of feature columns "
        "in tinyforge.toml if the build does not."
    )
    return [1]


def _window(masked: str) -> int | None:
    if (m := _WINDOWS_OF.search(masked)) is not None:
        value = to_int(m.group(1))
        if value and value > 1:
            return value
    for m in _SAMPLES.finditer(masked):
        around = masked[max(0, m.start() - 40) : m.end() + 40]
        value = to_int(m.group(1))
        if value and value > 1 and _WINDOW_CONTEXT.search(around):
            return value
    rate = _RATE.search(masked)
    duration = _DURATION.search(masked)
    if rate is not None and duration is not None:
        hz = to_float(rate.group(1))
        amount = duration.group(1).lower()
        seconds = 0.5 if amount.startswith("half") else to_float(amount)
        if hz is not None and seconds is not None:
            if rate.group(2):
                hz *= 1000
            if duration.group(2).lower().startswith("m"):
                seconds /= 1000
            samples = round(hz * seconds)
            if 1 < samples <= 1_000_000:
                return samples
    return None


def _default_window(assume: Assume) -> int:
    assume(
        "No window length given: assumed 128 samples per window (about 1 s of motion at ~100 Hz)."
    )
    return 128


def _axes(masked: str) -> int | None:
    if (m := _AXES.search(masked)) is not None:
        value = to_int(m.group(1))
        if value and value > 0:
            return value
    if _XYZ.search(masked):
        return 3
    return None


def _default_axes(masked: str, assume: Assume) -> int:
    if _MAGNETO.search(masked):
        assume("Assumed 9 channels: accelerometer, gyroscope and magnetometer x, y, z.")
        return 9
    if _GYRO.search(masked):
        assume("Assumed 6 channels: accelerometer and gyroscope x, y, z.")
        return 6
    assume("Assumed 3 channels: accelerometer x, y, z.")
    return 3


# -- budget ------------------------------------------------------------------------------
