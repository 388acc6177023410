"""dltoolkit-vision: image classification and transfer learning for dltoolkit.

The ``classify`` recipe, the ``lenet``, ``resnet`` and ``torchvision`` models and the sample
metric ``classifier-fid`` (its held-out metrics ``accuracy``, ``top-k``, ``loss`` and
``class-accuracy`` are the core's, for any recipe that provides ``"class-logits"``), registered by
:mod:`dltoolkit_vision.plugin`. Importing this package does not import torch.
"""
