"""What a run checkpoints beside its model and optimizer, and early stopping (paper 5.4).

The counters are `tf.Variable`s so that `tf.train.Checkpoint` saves and
restores them with the weights: a resumed run goes on with the same best
validation loss and the same count of evaluations without improvement.
"""

import math

import tensorflow as tf


class RunState:
    """Step, best validation loss and its step, evaluations without improvement."""

    def __init__(self):
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False)  # last step trained
        self.best_val = tf.Variable(math.inf, dtype=tf.float32, trainable=False)
        self.best_step = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.bad_evals = tf.Variable(0, dtype=tf.int64, trainable=False)

    def trackables(self) -> dict[str, tf.Variable]:
        """The variables under the names a checkpoint stores them."""
        return dict(step=self.step, best_val=self.best_val, best_step=self.best_step,
                    bad_evals=self.bad_evals)

    def record_evaluation(self, step: int, loss: float) -> bool:
        """Records the validation loss of `step`; returns whether it is the best so far.

        A loss that is not strictly lower than the best counts as one more
        evaluation without improvement.
        """
        improved = loss < float(self.best_val)
        if improved:
            self.best_val.assign(loss)
            self.best_step.assign(step)
            self.bad_evals.assign(0)
        else:
            self.bad_evals.assign_add(1)
        return improved

    def stopped_early(self, patience: int) -> bool:
        """Whether `patience` evaluations in a row brought no improvement."""
        return int(self.bad_evals) >= patience

    def done(self, num_steps: int, patience: int) -> bool:
        """Whether the run has reached `num_steps` or stopped early."""
        return int(self.step) >= num_steps or self.stopped_early(patience)
