"""Expression labels and Multi-PIE's (session, recording) -> expression map.

Multi-PIE's six expressions are the labels of every dataset here (synthetic,
London, Multi-PIE, a user's folder). Their integer id is the index in
`EXPRESSIONS`; that id is what shards, batches and latent statistics store.
"""

EXPRESSIONS = ("neutral", "smile", "surprise", "squint", "disgust", "scream")

# (session, recording) -> expression, camera 05_1 (paper 5.1).
MULTIPIE_RECORDINGS = {
    (1, 1): "neutral", (1, 2): "smile",
    (2, 1): "neutral", (2, 2): "surprise", (2, 3): "squint",
    (3, 1): "neutral", (3, 2): "smile", (3, 3): "disgust",
    (4, 1): "neutral", (4, 2): "neutral", (4, 3): "scream",
}
MULTIPIE_CAMERA = "05_1"
# The paper's illumination index was lost; 07 is Multi-PIE's frontal flash.
MULTIPIE_DEFAULT_ILLUMINATION = 7


def expression_id(name: str) -> int:
    """Returns the integer id of an expression name.

    Raises:
      ValueError: naming the unknown label and listing the known ones.
    """
    try:
        return EXPRESSIONS.index(name)
    except ValueError:
        raise ValueError(
            f"unknown expression {name!r}; known expressions: {', '.join(EXPRESSIONS)}"
        ) from None
