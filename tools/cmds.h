// Subcommands of skel. Each takes argv with argv[0] = the subcommand's name and returns the
// process exit status (0 ok, 1 failure, 2 usage error).
#ifndef SKEL_CMDS_H
#define SKEL_CMDS_H
int cmd_synth(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_analyze(int argc, char **argv);
int cmd_render(int argc, char **argv);
int cmd_plot(int argc, char **argv);
int cmd_dump(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_corpus(int argc, char **argv);
#endif
