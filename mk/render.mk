# render.mk: lets bin/skel link while main's tools/skel.c lists commands whose tools/cmd_*.c has
# not landed yet (synth, info, analyze at the time of writing). For each such command it links a
# stand-in that exits with "not built in this checkout". The stand-ins live in an archive, so the
# linker only pulls them for commands nobody defines: once the real files exist this does nothing
# and can be deleted.
PENDING_CMDS := $(filter-out $(patsubst tools/cmd_%.c,%,$(wildcard tools/cmd_*.c)),synth info analyze)
ifneq ($(PENDING_CMDS),)
PENDING_LIB := build/pending_cmds.a
bin/skel: LDLIBS += $(PENDING_LIB)
bin/skel: $(PENDING_LIB)
$(PENDING_LIB): mk/render.mk
	@mkdir -p build/pending
	@echo "make: commands without a tools/cmd_*.c yet, linked as stand-ins: $(PENDING_CMDS)"
	@for c in $(PENDING_CMDS); do \
	  printf '#include <stdio.h>\nint cmd_%s(int argc, char **argv) {\n    fprintf(stderr, "skel %s: not built in this checkout (tools/cmd_%s.c missing)\\n");\n    return 1;\n}\n' $$c $$c $$c > build/pending/cmd_$$c.c; \
	  $(CC) -c build/pending/cmd_$$c.c -o build/pending/cmd_$$c.o; \
	done
	@rm -f $@ && $(AR) rcs $@ $(PENDING_CMDS:%=build/pending/cmd_%.o)
endif
