LDLIBS += -lz
