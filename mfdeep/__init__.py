"""mfdeep: the mean-field limit of deep neural networks.

Subpackages:

* :mod:`mfdeep.model` -- instances, edge maps, laws (shared definitions);
* :mod:`mfdeep.reference` -- exact, high-precision and certified reference;
* :mod:`mfdeep.fast` -- the torch backend;
* :mod:`mfdeep.properties` -- Hypothesis strategies and properties.
"""

__version__ = "0.1.0"
