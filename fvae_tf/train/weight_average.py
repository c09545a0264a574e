"""An exponential moving average of the trainable weights (not in the paper).

Evaluated and kept instead of the last step's weights, an average over the
last few hundred steps removes part of the step-to-step noise of Adam's
updates (Polyak averaging; Keras optimizers' `use_ema`). With momentum m the
shadow of each weight w follows

  a_t = m a_{t-1} + (1 - m) w_t,   a_0 = 0,

and the average is read debiased, a_t / (1 - m^t), as Adam debiases its
moments: from the first step on it is a weighted mean of the weights seen
since the average started, so a run initialised from another's weights
(`init_from`) averages its own steps only. The shadows and t are variables,
so a checkpoint keeps them and a resumed run continues the same average.
"""

import contextlib
from collections.abc import Iterator

import tensorflow as tf


class WeightAverage(tf.Module):
    """Shadows of `variables`, updated after every training step.

    Args:
      variables: the trainable variables to average (created beforehand).
      momentum: m in (0, 1); 1 / (1 - m) is the average's time constant in steps.
    """

    def __init__(self, variables: list[tf.Variable], momentum: float):
        super().__init__(name="weight_average")
        if not 0 < momentum < 1:
            raise ValueError(f"the weight average's momentum must be in (0, 1), got {momentum}")
        self.momentum = momentum
        self.variables_averaged = list(variables)
        self.shadows = [tf.Variable(tf.zeros_like(v), trainable=False, name="shadow")
                        for v in self.variables_averaged]
        self.count = tf.Variable(0, dtype=tf.int64, trainable=False, name="count")

    def update(self) -> None:
        """One step of the average: a_t = m a_{t-1} + (1 - m) w_t."""
        for shadow, variable in zip(self.shadows, self.variables_averaged):
            shadow.assign(self.momentum * shadow + (1.0 - self.momentum) * variable)
        self.count.assign_add(1)

    def averaged(self) -> list[tf.Tensor]:
        """The debiased averages a_t / (1 - m^t); the weights themselves before any step."""
        if int(self.count) == 0:
            return [tf.identity(v) for v in self.variables_averaged]
        debias = 1.0 - self.momentum ** int(self.count)
        return [shadow / debias for shadow in self.shadows]

    @contextlib.contextmanager
    def swapped_in(self) -> Iterator[None]:
        """Within the block the variables hold the averages; afterwards their own values."""
        kept = [tf.identity(v) for v in self.variables_averaged]
        for variable, value in zip(self.variables_averaged, self.averaged()):
            variable.assign(value)
        try:
            yield
        finally:
            for variable, value in zip(self.variables_averaged, kept):
                variable.assign(value)
