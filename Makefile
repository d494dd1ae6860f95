# SPDX-License-Identifier: GPL-2.0
# pincheck: `make` builds libpincheck and the test binaries into build/,
# `make check` runs the project's own tests (see README).

CC ?= cc
O ?= build
PKG_CONFIG ?= pkg-config

CFLAGS ?= -O2 -g
CFLAGS += -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE
LDFLAGS += -Wl,--as-needed
LDLIBS += -lpthread

# Optional libraries: an engine built without one reports its cases as SKIP.
have = $(shell $(PKG_CONFIG) --exists $(1) 2>/dev/null && echo y)
ifeq ($(call have,liburing),y)
CFLAGS += -DHAVE_LIBURING $(shell $(PKG_CONFIG) --cflags liburing)
LDLIBS += $(shell $(PKG_CONFIG) --libs liburing)
endif
ifeq ($(call have,libibverbs),y)
CFLAGS += -DHAVE_LIBIBVERBS $(shell $(PKG_CONFIG) --cflags libibverbs)
LDLIBS += $(shell $(PKG_CONFIG) --libs libibverbs)
endif
ifeq ($(call have,numa),y)
CFLAGS += -DHAVE_LIBNUMA $(shell $(PKG_CONFIG) --cflags numa)
LDLIBS += $(shell $(PKG_CONFIG) --libs numa)
endif

# lib/ and its folders (lib/README.md); every folder with a header is on
# the include path, so sources include "harness.h", not a path.
LIB_DIRS := lib/ $(wildcard lib/*/ lib/*/*/)
LIB_SRCS := $(wildcard $(addsuffix *.c,$(LIB_DIRS)))
LIB_OBJS := $(LIB_SRCS:%.c=$(O)/%.o)
LIB := $(O)/libpincheck.a
HDRS := $(wildcard $(addsuffix *.h,$(LIB_DIRS)))
CFLAGS += $(addprefix -I,$(patsubst %/,%,$(sort $(dir $(HDRS)))))

TESTS := $(patsubst tests/%.c,%,$(wildcard tests/*.c))
TEST_BINS := $(TESTS:%=$(O)/tests/%)
UNITS := $(patsubst unit/%.c,%,$(wildcard unit/*.c))
UNIT_BINS := $(UNITS:%=$(O)/unit/%)
HELPERS := $(patsubst helpers/%.c,$(O)/helpers/%,$(wildcard helpers/*.c))

all: $(TEST_BINS) $(UNIT_BINS) $(HELPERS)

# Rebuild everything when the compiler or the detected libraries change
# (a package installed after a first build must not leave stale SKIPs).
FLAGS_STAMP := $(O)/.flags
FLAGS_NOW := $(CC) $(CFLAGS) $(LDFLAGS) $(LDLIBS)
ifneq ($(FLAGS_NOW),$(shell cat $(FLAGS_STAMP) 2>/dev/null))
$(shell mkdir -p $(O) && printf '%s\n' '$(FLAGS_NOW)' > $(FLAGS_STAMP))
endif

$(O)/%.o: %.c $(HDRS) Makefile $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

# q, not r: members are matched by base name, and two folders may each
# hold an engine.o.
$(LIB): $(LIB_OBJS)
	@rm -f $@
	$(AR) qcs $@ $^

$(O)/tests/%: $(O)/tests/%.o $(LIB)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

# Programs the tests exec, static: no dynamic loader to pay for per exec.
$(O)/helpers/%: helpers/%.c Makefile $(FLAGS_STAMP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -static -o $@ $<

$(O)/unit/%: $(O)/unit/%.o $(LIB)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

check:
	@./scripts/dev/check.sh

clean:
	rm -rf $(O)

.PHONY: all check clean
.SECONDARY: $(LIB_OBJS) $(TEST_BINS:%=%.o) $(UNIT_BINS:%=%.o)
