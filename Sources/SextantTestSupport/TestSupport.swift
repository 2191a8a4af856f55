// Sextant — an embedded vector database. Licensed under Apache-2.0.
@_exported import Sextant
