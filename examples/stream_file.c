/* Streams a CSV recording through harvit's C API and prints one line per decision: the same
 * bytes as `harvit stream --format csv` with the same options.
 *
 *   stream_file MODEL.safetensors FILE.csv [--time COLUMN] [--hop N] [--smooth K]
 *
 * The CSV has a header row naming the model's axes (harvit_axis_name: x,y,z for WISDM models);
 * --time names a column of milliseconds. Build against an installed harvit:
 *
 *   cc -std=c99 stream_file.c -o stream_file $(pkg-config --cflags --libs harvit) -lm
 */
#include <harvit/harvit.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LINE 65536
#define MAX_COLS 256

static const char** g_classes;

static void die(const char* msg) {
  fprintf(stderr, "stream_file: %s\n", msg);
  exit(1);
}

/* Splits line (modified in place) on ',' into at most MAX_COLS trimmed fields; returns the count. */
static int split(char* line, char** f) {
  int n = 0;
  char* p = line;
  for (;;) {
    char* e = strchr(p, ',');
    char* end;
    if (e) *e = '\0';
    while (*p == ' ' || *p == '\t') ++p;
    end = p + strlen(p);
    while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' || end[-1] == '\n')) *--end = '\0';
    if (n == MAX_COLS) return n + 1;
    f[n++] = p;
    if (!e) return n;
    p = e + 1;
  }
}

static int parse_number(const char* s, double* v) {
  char* end;
  if (*s == '\0') return 0;
  errno = 0;
  *v = strtod(s, &end);
  return *end == '\0' && errno == 0 && isfinite(*v);
}

/* Prints one decision (called by harvit_push for each hop). */
static void print_decision(const harvit_decision* d, void* user) {
  const int64_t classes = *(const int64_t*)user;
  int64_t c;
  printf("%lld,%lld,%s,%.4f,%s,%.4f,%d", (long long)d->end, (long long)d->time_ns,
         d->label >= 0 ? g_classes[d->label] : "unknown", d->confidence, g_classes[d->hop_label], d->hop_confidence,
         d->changed);
  for (c = 0; c < classes; ++c) printf(",%.4f", d->probs[c]);
  printf("\n");
  fflush(stdout);
}

int main(int argc, char** argv) {
  harvit_options opt;
  harvit_stream* h;
  const char* time_col = NULL;
  static char line[MAX_LINE];
  char* f[MAX_COLS + 1];
  int col[64], tcol = -1, ncols, n, i, st;
  int64_t axes, classes, c, lineno = 0;
  float row[64];
  FILE* in;

  if (argc < 3) die("usage: stream_file MODEL.safetensors FILE.csv [--time COLUMN] [--hop N] [--smooth K]");
  harvit_options_init(&opt);
  for (i = 3; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--time") == 0) time_col = argv[i + 1];
    else if (strcmp(argv[i], "--hop") == 0) opt.hop = atoll(argv[i + 1]);
    else if (strcmp(argv[i], "--smooth") == 0) opt.smooth = atoi(argv[i + 1]);
    else die("unknown option (--time, --hop, --smooth)");
  }
  if (i != argc) die("an option lacks its value");

  st = harvit_open(argv[1], &opt, &h);
  if (st != HARVIT_OK) {
    fprintf(stderr, "stream_file: %s: %s\n", harvit_status_string(st), harvit_error_message(NULL));
    return 1;
  }
  harvit_axes(h, &axes);
  harvit_classes(h, &classes);
  if (axes > 64) die("more than 64 axes");
  g_classes = malloc((size_t)classes * sizeof *g_classes);
  if (!g_classes) die("out of memory");
  for (c = 0; c < classes; ++c) harvit_class_name(h, c, &g_classes[c]);

  in = fopen(argv[2], "r");
  if (!in) {
    fprintf(stderr, "stream_file: %s: %s\n", argv[2], strerror(errno));
    return 1;
  }
  /* the header: find the model's axes (and the time column) by name */
  if (!fgets(line, sizeof line, in)) die("no header row");
  ++lineno;
  ncols = split(line, f);
  for (c = 0; c < axes; ++c) {
    const char* name;
    harvit_axis_name(h, c, &name);
    col[c] = -1;
    for (i = 0; i < ncols && i < MAX_COLS; ++i)
      if (strcmp(f[i], name) == 0) col[c] = i;
    if (col[c] < 0) {
      fprintf(stderr, "stream_file: %s:1: no column named '%s' (the model's axis %lld)\n", argv[2], name, (long long)c);
      return 1;
    }
  }
  for (i = 0; time_col && i < ncols && i < MAX_COLS; ++i)
    if (strcmp(f[i], time_col) == 0) tcol = i;
  if (time_col && tcol < 0) {
    fprintf(stderr, "stream_file: %s:1: no column named '%s'\n", argv[2], time_col);
    return 1;
  }

  printf("end,time_ns,label,confidence,hop_label,hop_confidence,changed");
  for (c = 0; c < classes; ++c) printf(",p_%s", g_classes[c]);
  printf("\n");
  harvit_set_callback(h, print_decision, &classes);

  while (fgets(line, sizeof line, in)) {
    double v;
    int64_t t = -1;
    ++lineno;
    if (strlen(line) == sizeof line - 1) die("line too long");
    if (line[strspn(line, " \t\r\n")] == '\0') continue; /* empty line */
    n = split(line, f);
    if (n != ncols) {
      fprintf(stderr, "stream_file: %s:%lld: %d columns, the header has %d\n", argv[2], (long long)lineno, n, ncols);
      return 1;
    }
    for (c = 0; c < axes; ++c) {
      if (!parse_number(f[col[c]], &v)) {
        fprintf(stderr, "stream_file: %s:%lld: '%s' is not a number\n", argv[2], (long long)lineno, f[col[c]]);
        return 1;
      }
      row[c] = (float)v;
    }
    if (tcol >= 0) {
      if (!parse_number(f[tcol], &v)) {
        fprintf(stderr, "stream_file: %s:%lld: time '%s' is not a number\n", argv[2], (long long)lineno, f[tcol]);
        return 1;
      }
      t = llround(v * 1e6); /* milliseconds -> nanoseconds */
    }
    st = harvit_push(h, row, 1, tcol >= 0 ? &t : NULL);
    if (st != HARVIT_OK) {
      fprintf(stderr, "stream_file: %s\n", harvit_error_message(h));
      return 1;
    }
  }
  fclose(in);
  free((void*)g_classes);
  harvit_close(h);
  return 0;
}
