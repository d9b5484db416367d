"""A generated demo company for `custody demo` and the tests."""
