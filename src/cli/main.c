/* dcl command-line entry: dispatches to one file per subcommand (cmd_*.c). */
#include "cli/cli.h"
#include <stdio.h>
#include <string.h>

#define WEAK __attribute__((weak))
int cmd_forward(int, char **) WEAK;
int cmd_bench(int, char **) WEAK;
int cmd_extract(int, char **) WEAK;
int cmd_train(int, char **) WEAK;
int cmd_eval(int, char **) WEAK;
int cmd_metrics(int, char **) WEAK;
int cmd_report(int, char **) WEAK;
int cmd_detect(int, char **) WEAK;
int cmd_serve(int, char **) WEAK;
int cmd_export(int, char **) WEAK;
int cmd_synth(int, char **) WEAK;
int cmd_info(int, char **) WEAK;

static const struct { const char *name, *help; } g_cmds[] = {
    {"forward", "run a network on one image and print logits as JSON"},
    {"bench", "time training and inference"},
    {"extract", "decode videos, detect and crop faces into a cache"},
    {"train", "train a DCL detector from a config"},
    {"eval", "score a cache with a checkpoint; run a protocol"},
    {"metrics", "AUC/EER/ACC/AP from a label,score CSV"},
    {"report", "gather a run into one HTML page"},
    {"detect", "score images and videos"},
    {"serve", "HTTP scoring service"},
    {"export", "write a model file from a checkpoint"},
    {"synth", "write a synthetic forgery dataset"},
    {"info", "list the tensors of a safetensors file"},
};

static int (*lookup(const char *name))(int, char **) {
    if (!strcmp(name, "forward")) return cmd_forward;
    if (!strcmp(name, "bench")) return cmd_bench;
    if (!strcmp(name, "extract")) return cmd_extract;
    if (!strcmp(name, "train")) return cmd_train;
    if (!strcmp(name, "eval")) return cmd_eval;
    if (!strcmp(name, "metrics")) return cmd_metrics;
    if (!strcmp(name, "report")) return cmd_report;
    if (!strcmp(name, "detect")) return cmd_detect;
    if (!strcmp(name, "serve")) return cmd_serve;
    if (!strcmp(name, "export")) return cmd_export;
    if (!strcmp(name, "synth")) return cmd_synth;
    if (!strcmp(name, "info")) return cmd_info;
    return NULL;
}

static void usage(FILE *f) {
    fprintf(f, "usage: dcl COMMAND [options]   (dcl COMMAND --help for details)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof g_cmds / sizeof g_cmds[0]; i++)
        if (lookup(g_cmds[i].name)) fprintf(f, "  %-9s %s\n", g_cmds[i].name, g_cmds[i].help);
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? DCL_EXIT_USAGE : 0;
    }
    int (*fn)(int, char **) = lookup(argv[1]);
    if (!fn) {
        fprintf(stderr, "dcl: unknown command '%s'\n", argv[1]);
        usage(stderr);
        return DCL_EXIT_USAGE;
    }
    return fn(argc - 1, argv + 1);
}
