"""The tasks a model artifact can declare (its manifest's and payload's ``task``).

The one list: the handler's runtimes, training, the monitors and the traffic gate all
import it.
"""

TASKS = ("binary", "multiclass", "regression")
