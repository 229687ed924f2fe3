"""Pure pieces shared by workflows, activities and clients: types, names, validation.

Nothing in this package does I/O, so workflow code may import all of it.
"""
