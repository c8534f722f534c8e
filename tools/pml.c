/* pml — the command: dispatches to one function per command. */
#include "cli.h"

#include "models/models.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* pml calls BLAS single-threaded from its own pinned workers; OpenBLAS's thread pool would only
 * fight them for the cores, and under a low address-space limit its threads spin for ever in
 * its allocator (even for `pml --help`, at exit). OpenBLAS starts that pool in its constructor,
 * before main, sized by OPENBLAS_NUM_THREADS, and the C library resets the environment after
 * any pre-initialiser could set it: so pml sets it and runs itself again, once. Without /proc
 * it goes on as it is (every BLAS call is still single-threaded). */
static void blas_without_threads(char **argv)
{
    const char *v = getenv("OPENBLAS_NUM_THREADS");
    if (v && strcmp(v, "1") == 0) return;
    if (setenv("OPENBLAS_NUM_THREADS", "1", 1) != 0) return;
    setenv("OMP_NUM_THREADS", "1", 0); /* oneDNN's OpenMP team, where built in: one thread */
    execv("/proc/self/exe", argv);
}

/* PML_CONV=blas|dnnl|auto: which conv2d implementation runs (pml_conv_backend; default auto:
 * measured per layer shape). For benchmarks; anything else is refused. */
static bool conv_backend_from_env(void)
{
    const char *v = getenv("PML_CONV");
    if (!v || !*v || strcmp(v, "auto") == 0) return true;
    if (strcmp(v, "blas") == 0) pml_conv_backend(PML_CONV_BLAS);
    else if (strcmp(v, "dnnl") == 0) pml_conv_backend(PML_CONV_DNNL);
    else {
        fprintf(stderr, "pml: PML_CONV='%s' must be blas, dnnl or auto\n", cli_safe(v));
        return false;
    }
    return true;
}

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
          "                 accuracy (the simulator against measured runs), bench kernels\n"
          "                 (each kernel against this core's sgemm)\n"
          "  evaluate FILE  a saved model's (pml train --save) test loss and accuracy\n"
          "  predict FILE   a saved model's class and probability for each test sample\n"
          "  infer MODEL    a model's forward pass on tensor files (ONNX .pb, NumPy .npy)\n"
          "  summary MODEL  a model's layers: output shapes, parameters, FLOPs (as Keras)\n"
          "  export MODEL   write a model as a DOT file (-o FILE.dot)\n"
          "  viz GRAPH      draw a model, plan or machine as svg, png, pdf or dot (-o FILE)\n"
          "  topo           print a machine: devices, links, routes (--machine M, -o FILE.dot)\n"
          "  compile MODEL  plan a model for a machine (--machine M --batch N -o PLAN.dot)\n"
          "  simulate PLAN  predict a plan's step time and its breakdown\n"
          "  sweep MODEL    train over a grid of parameters (--vary units=32,128 ...): tables\n"
          "                 and plots of accuracy, loss and time, measured and predicted\n"
          "\n"
          "MODEL is a model .dot file (see pml export), an ONNX model (.onnx), a saved model\n"
          "(.pml) or a zoo name with optional parameters,\n"
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
          "  pml simulate alexnet-k80.dot\n"
          "  pml sweep mlp --vary units=32,128,256,512 --vary threads=1,2 -o sweep\n",
          f);
}

int main(int argc, char **argv)
{
    blas_without_threads(argv);
    if (!conv_backend_from_env()) return EXIT_USAGE;
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return cli_close_stdout(NULL, 0);
    }
    if (strcmp(cmd, "--version") == 0) {
        puts("pml " PML_VERSION);
        return cli_close_stdout(NULL, 0);
    }
    int (*run)(int, char **) = strcmp(cmd, "train") == 0      ? cmd_train
                               : strcmp(cmd, "bench") == 0    ? cmd_bench
                               : strcmp(cmd, "export") == 0   ? cmd_export
                               : strcmp(cmd, "evaluate") == 0 ? cmd_evaluate
                               : strcmp(cmd, "predict") == 0  ? cmd_predict
                               : strcmp(cmd, "infer") == 0    ? cmd_infer
                               : strcmp(cmd, "viz") == 0      ? cmd_viz
                               : strcmp(cmd, "topo") == 0     ? cmd_topo
                               : strcmp(cmd, "compile") == 0  ? cmd_compile
                               : strcmp(cmd, "simulate") == 0 ? cmd_simulate
                               : strcmp(cmd, "sweep") == 0    ? cmd_sweep
                               : strcmp(cmd, "summary") == 0  ? cmd_summary
                                                              : NULL;
    if (run) {
        const int rc = run(argc - 1, argv + 1);
        cli_json_failure(cmd, argc - 1, argv + 1, rc);
        return cli_close_stdout(cmd, rc);
    }
    fprintf(stderr, "pml: unknown command '%s' (see pml --help)\n", cli_safe(cmd));
    return EXIT_USAGE;
}
