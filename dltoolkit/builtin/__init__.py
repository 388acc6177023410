"""dltoolkit's built-in plugins, written exactly like third-party ones."""
