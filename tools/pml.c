/* pml — the command: dispatches to one function per command. */
#include "cli.h"

#include "models.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *f)
{
    fputs("usage: pml COMMAND [options]   (pml COMMAND --help for its options)\n"
          "\n"
          "pml is a dataflow graph runtime with a parallelisation planner.\n"
          "\n"
          "commands:\n"
          "  train MODEL    train a model (Keras-like progress, test accuracy at the end)\n"
          "  bench ...      benchmarks: bench train MODEL (training steps), bench sim MODEL\n"
          "                 (full vs delta simulation), bench runtime (cost per task), bench\n"
          "                 accuracy (the simulator against measured runs)\n"
          "  export MODEL   write a model as a DOT file (-o FILE.dot)\n"
          "  viz GRAPH      draw a model, plan or machine as svg, png, pdf or dot (-o FILE)\n"
          "  topo           print a machine: devices, links, routes (--machine M, -o FILE.dot)\n"
          "  compile MODEL  plan a model for a machine (--machine M --batch N -o PLAN.dot)\n"
          "  simulate PLAN  predict a plan's step time and its breakdown\n"
          "\n"
          "MODEL is a model .dot file (see pml export) or a zoo name with optional parameters,\n"
          "NAME[:key=value,...]:\n",
          f);
    int n;
    const pml_zoo_entry *z = pml_zoo_list(&n);
    for (int i = 0; i < n; i++)
        fprintf(f, "  %-14s %s\n  %-14s   parameters (defaults): %s\n", z[i].name, z[i].summary, "",
                z[i].params);
    fputs("\nexamples:\n"
          "  pml train mlp --epochs 5\n"
          "  pml train mlp:units=512,layers=8 --threads 2 --json\n"
          "  pml train fashion-cnn --epochs 3 --validation-split 0.1\n"
          "  pml train flowers-cnn --data synthetic --epochs 1\n"
          "  pml export resnet50 -o resnet50.dot\n"
          "  pml viz inception-v3 --collapse -o inception-v3.svg\n"
          "  pml compile alexnet --machine flexflow-k80 --batch 1024 -o alexnet-k80.dot\n"
          "  pml simulate alexnet-k80.dot\n",
          f);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "--version") == 0) {
        puts("pml " PML_VERSION);
        return 0;
    }
    if (strcmp(cmd, "train") == 0) return cmd_train(argc - 1, argv + 1);
    if (strcmp(cmd, "bench") == 0) return cmd_bench(argc - 1, argv + 1);
    if (strcmp(cmd, "export") == 0) return cmd_export(argc - 1, argv + 1);
    if (strcmp(cmd, "viz") == 0) return cmd_viz(argc - 1, argv + 1);
    if (strcmp(cmd, "topo") == 0) return cmd_topo(argc - 1, argv + 1);
    if (strcmp(cmd, "compile") == 0) return cmd_compile(argc - 1, argv + 1);
    if (strcmp(cmd, "simulate") == 0) return cmd_simulate(argc - 1, argv + 1);
    fprintf(stderr, "pml: unknown command '%s' (see pml --help)\n", cmd);
    return EXIT_USAGE;
}
