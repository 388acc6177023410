"""dltoolkit-vision: image classification and transfer learning for dltoolkit.

The ``classify`` recipe, the ``lenet``, ``resnet`` and ``torchvision`` models and the held-out
metrics ``accuracy``, ``top_k``, ``loss`` and ``class_accuracy``, registered by
:mod:`dltoolkit_vision.plugin`. Importing this package does not import torch.
"""
