"""Root conftest: import the packages first so pytest's importlib mode cannot shadow them.

Each folder holds a package of the same name (`labkit/labkit`) beside its tests (`labkit/tests`);
importlib mode names a test module `labkit.tests.test_x` and would otherwise insert an empty
`labkit` module for the missing parents.
"""

import avalanche_llm  # noqa: F401
import cachemedicpp  # noqa: F401
import dream  # noqa: F401
import esper  # noqa: F401
import labkit  # noqa: F401
