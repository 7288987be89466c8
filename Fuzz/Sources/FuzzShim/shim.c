// The declaration lives in include/FuzzShim.h; libFuzzer provides the definition.
