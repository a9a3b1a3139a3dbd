"""FTGO ("Food To Go"): the reference application of Servicewire.

Three services, each with its own database, talking by REST, gRPC and messages:

* :mod:`ftgo.restaurant` — restaurants, menus, delivery areas; validates order details.
* :mod:`ftgo.consumer` — consumers and their limits; validates consumers.
* :mod:`ftgo.order` — orders; creates them PENDING, answers at once, and finishes
  validation asynchronously from the other two services' replies.

Each package's ``api`` module is its published API (the contracts other services may
use); everything else in the package is private to the service.
"""
