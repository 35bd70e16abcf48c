"""Team-scale tests (a real PostgreSQL, a shared MLflow server). A package, so that this folder's conftest.py does not
replace tests/conftest.py as the module `conftest` that test files import helpers from."""
