// plot_data.h: the data files behind the gnuplot charts of `skel plot` (scripts in plots/).
//
// Files written into dir (whitespace-separated columns, '#' comment header):
//   report.dat            layer head exact threshold block predicted predicted_block mask_density
//                         mask_recall oracle_density min_rowblock_recall   (fractions, one row a head)
//   heatmap.dat           row layer head exact_sparsity_percent  (a block per layer present, row = its
//                         rank; every head of it, NaN if absent)
//   fig3_<L>_<H>_svh.dat  index s v h  (at most PLOT_MAX_POINTS lines: bin maxima when N is larger)
//   fig3_<L>_<H>_mask.dat key query kept_fraction  (at most PLOT_MASK_CELLS cells a side)
//   fig4_<L>_<H>_z.dat    index 0: z density (the histogram); index 1: z normal_density (same
//                         mean and variance, fine grid)
//   params.gp             gnuplot variables: model, n_tokens, eps, n_heads_total, heads, head_labels,
//                         block, sink, local, layers_present (words, ascending)
#ifndef SKEL_PLOT_DATA_H
#define SKEL_PLOT_DATA_H

#include "results_read.h"

#define PLOT_MAX_POINTS 4096
#define PLOT_MASK_CELLS 256
#define PLOT_MAX_HEADS 8

typedef struct {
    int layer, head;
} plot_head;

// Chooses up to 3 heads for Fig. 3 and 4 when none are given: least, median and most exactly
// sparse of the report. Returns the count.
int plot_choose_heads(const head_report *rows, int n, plot_head *out);

// Writes every data file and params.gp. heads (n_heads) must exist in the file.
int plot_write_data(const results_file *R, const head_report *rows, int n_rows, const plot_head *heads,
                    int n_heads, const char *dir, skel_err *e);

// The recall-density sweeps (skel analyze --sweep) of the given heads that have one:
// sweep_<L>_<H>.dat and sweep_params.gp; has_sweep[k] = 1 for those heads.
int plot_write_sweeps(const results_file *R, const plot_head *heads, int n_heads, const char *dir, int *has_sweep,
                      skel_err *e);

// Fig. 6b: cost.dat, the attention PFLOP of each method's masks (and dense attention) summed over
// the analysed heads of each results file (one context length per file), from their /methods.
// has_cost = 0 (and nothing written) when a file has no /methods table.
int plot_write_cost(const char *const *paths, int n_paths, const char *dir, int *has_cost, skel_err *e);

#endif
