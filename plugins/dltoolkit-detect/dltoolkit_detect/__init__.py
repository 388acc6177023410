"""dltoolkit-detect: object detection for dltoolkit.

The ``detect`` recipe, the torchvision detectors (``fasterrcnn_mobilenet_v3_large_fpn``,
``ssdlite320_mobilenet_v3_large``, ``retinanet_resnet50_fpn``) started from local weights files,
the small anchor-free ``centernet`` detector, the ``coco-folder``, ``voc-folder`` and
``digit-boxes`` datasets and the COCO ``map`` / ``map50`` metrics, registered by
:mod:`dltoolkit_detect.plugin`. Importing this package does not import torch.
"""
