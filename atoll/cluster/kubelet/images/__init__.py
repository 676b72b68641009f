"""The images the process runtime can run: a catalog of entrypoints, and the programs Atoll ships."""
