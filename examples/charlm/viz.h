/* examples/charlm/viz.h: 'charlm viz', the gate viewer: one self-contained HTML page of a
   model's gate activations over a text. */
#ifndef CHARLM_VIZ_H
#define CHARLM_VIZ_H

#include <stdio.h>

/* Runs 'charlm viz' with argv[0] == "viz". Returns an exit code of charlm.h (EXIT_OK,
   EXIT_RUNTIME for I/O or model errors, EXIT_USAGE for a bad command line). */
int cmd_viz(int argc, char **argv);

/* Prints the usage of 'charlm viz' to f. */
void viz_usage(FILE *f);

/* viz_page.c: writes the page template to f, calling data(f, user) where the data go.
   Returns the first negative return of data, or 0 (write errors show in ferror(f)). */
int viz_page_write(FILE *f, int (*data)(FILE *f, void *user), void *user);

#endif /* CHARLM_VIZ_H */
