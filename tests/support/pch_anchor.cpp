// The one source of qf_test_pch, the target whose precompiled header
// (test_pch.h) every test executable reuses.
