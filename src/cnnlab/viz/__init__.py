"""Pictures of training and of what a network does, as matplotlib Figures (never pyplot) and a report.

    figures.py   Figure helpers                    tiles.py     tile mosaics
    plots.py     training curves, confusion matrix lr_find.py   the range test's plot
    filters.py   a conv layer's weights            feature_maps.py  each layer's output
    attribution.py  saliency, Grad-CAM             conv_arithmetic.py  one convolution by hand
    inspect.py   all of them for a run, to files   mistakes.py  the worst test images
    report.py    one self-contained report.html
    display.py   runs, results and figures in a notebook   teaching.py  a kernel sliding, output sizes
"""
