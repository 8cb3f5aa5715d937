"""The app layer: the demo and the wiring of each command. Nothing outside the app layer imports it."""
