"""Episode videos: atomic mp4 writes and small gifs for the docs."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from configs.runs import atomic_write


def write_video(path: Path, frames: list[np.ndarray], fps: int = 20) -> Path:
    """Atomic mp4 (H.264) write; frames (H, W, 3) uint8."""
    import imageio.v2 as imageio

    def write(tmp: Path) -> None:
        with imageio.get_writer(str(tmp), fps=fps, codec="libx264", macro_block_size=1, quality=6,
                                format="FFMPEG") as w:
            for f in frames:
                w.append_data(f)

    return atomic_write(path, write)


def export_gif(mp4: Path, gif: Path, size: int = 96, max_frames: int = 20, fps: int = 5) -> Path:
    """Small looping gif of an episode video (for docs): <= max_frames frames, `size` px high."""
    import imageio.v2 as imageio
    from PIL import Image

    reader = imageio.get_reader(str(mp4), format="FFMPEG")
    frames = [f for f in reader]
    reader.close()
    idx = np.unique(np.linspace(0, len(frames) - 1, min(max_frames, len(frames))).astype(int))
    imgs = []
    for i in idx:
        im = Image.fromarray(frames[i])
        w = round(im.width * size / im.height)
        imgs.append(im.resize((w, size), Image.Resampling.BILINEAR).convert("P", palette=Image.Palette.ADAPTIVE))

    def write(tmp: Path) -> None:
        imgs[0].save(tmp, format="GIF", save_all=True, append_images=imgs[1:], duration=int(1000 / fps), loop=0)

    return atomic_write(gif, write)


def export_gifs(out: str | Path, dest: str | Path, trial: int = 0) -> list[Path]:
    """One gif per evaluated task (its trial `trial` video) from an eval --out dir into `dest`."""
    out, dest = Path(out), Path(dest)
    made = []
    for mp4 in sorted(out.glob(f"episodes/*/task*/trial{trial:03d}.mp4")):
        suite, task = mp4.parts[-3], mp4.parts[-2]
        made.append(export_gif(mp4, dest / f"{suite}_{task}.gif"))
    return made
