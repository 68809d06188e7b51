#!/usr/bin/env python3
"""Charts for the bench scripts: SVG (or PNG, for OUT.png) written with matplotlib (Debian:
python3-matplotlib).

    plot.py lines OUT.svg --title T --xlabel X --ylabel Y [--diagonal] < ROWS
        ROWS: "series x y" per line; one line per series, points in x order.
        --diagonal draws y = x (replies = offered) for reference.
    plot.py bars OUT.svg --title T --ylabel Y < ROWS
        ROWS: "series category value" per line; grouped bars, categories in first-seen order.

Lines starting with '#' and empty lines are skipped. The SVG carries no date and a fixed
hash salt, so the same data gives the same file.
"""
import argparse
import sys
import textwrap


def rows(stream):
    out = []
    for line in stream:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        f = line.split()
        if len(f) != 3:
            sys.exit("plot.py: want 'series x y', got %r" % line)
        out.append((f[0], f[1], float(f[2])))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=["lines", "bars"])
    ap.add_argument("out")
    ap.add_argument("--title", default="")
    ap.add_argument("--xlabel", default="")
    ap.add_argument("--ylabel", default="")
    ap.add_argument("--diagonal", action="store_true")
    a = ap.parse_args()
    try:
        import matplotlib
    except ImportError:
        sys.exit("plot.py: needs matplotlib (apt-get install python3-matplotlib)")
    matplotlib.use("Agg")
    matplotlib.rcParams["svg.hashsalt"] = "nsxdp"
    import matplotlib.pyplot as plt

    data = rows(sys.stdin)
    if not data:
        sys.exit("plot.py: no rows")
    fig, ax = plt.subplots(figsize=(7, 4))
    series = list(dict.fromkeys(s for s, _, _ in data))
    if a.kind == "lines":
        for s in series:
            pts = sorted((float(x), y) for n, x, y in data if n == s)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=s)
        if a.diagonal:
            hi = max(float(x) for _, x, _ in data)
            ax.plot([0, hi], [0, hi], linestyle=":", color="grey", label="offered")
        ax.set_xlim(left=0)
        ax.set_ylim(bottom=0)
        ax.ticklabel_format(style="plain")
    else:
        cats = list(dict.fromkeys(c for _, c, _ in data))
        width = 0.8 / len(series)
        for i, s in enumerate(series):
            vals = {c: y for n, c, y in data if n == s}
            xs = [j + i * width - 0.4 + width / 2 for j in range(len(cats))]
            ax.bar(xs, [vals.get(c, 0) for c in cats], width, label=s)
        ax.set_xticks(range(len(cats)))
        ax.set_xticklabels(cats)
    ax.set_title(textwrap.fill(a.title, 80), fontsize=10)
    ax.set_xlabel(a.xlabel)
    ax.set_ylabel(a.ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    if a.out.endswith(".png"):
        fig.savefig(a.out, format="png", dpi=100)
    else:
        fig.savefig(a.out, format="svg", metadata={"Date": None})
    print("plot.py: wrote %s" % a.out, file=sys.stderr)


if __name__ == "__main__":
    main()
