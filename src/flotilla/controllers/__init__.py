"""Controllers: the runtime every controller is built on (`flotilla.controllers.runtime`),
the Event recorder (`flotilla.controllers.events`), and the control-plane controllers.

Import from the submodules; this package init stays empty so that importing one
controller does not import them all.
"""
