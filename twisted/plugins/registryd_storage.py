"""
The built-in storage drivers, as plugins: nothing but names here, so scanning for plugins
stays cheap; each driver's module is imported when a driver is made.
"""

from registryd.plugins import StorageDriverPlugin

filesystem = StorageDriverPlugin(
    "filesystem", "registryd.storage.filesystem", "content in a directory tree, laid out as distribution does"
)
inmemory = StorageDriverPlugin(
    "inmemory", "registryd.storage.inmemory", "content in memory, lost when the process ends (for tests)"
)
s3 = StorageDriverPlugin(
    "s3", "registryd.storage.s3", "content in an Amazon S3 (or S3-compatible) bucket, multipart uploads"
)
s3aws = StorageDriverPlugin("s3aws", "registryd.storage.s3.s3aws", "the s3 driver under its other name")
oss = StorageDriverPlugin(
    "oss",
    "registryd.storage.oss",
    "content in an Aliyun OSS bucket, through the s3 driver (S3-compatible API)",
)
azure = StorageDriverPlugin(
    "azure", "registryd.storage.azure", "block blobs in an Azure Blob Storage container (or Azurite)"
)
gcs = StorageDriverPlugin(
    "gcs", "registryd.storage.gcs", "objects in a Google Cloud Storage bucket, resumable uploads, signed URLs"
)
swift = StorageDriverPlugin(
    "swift", "registryd.storage.swift", "objects in an OpenStack Swift container, large ones as DLO segments"
)
