{
  "targets": [
    {
      "target_name": "secondsite_native",
      "sources": ["src/secondsite_native.c", "src/errno_name.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-std=gnu11"],
      "defines": ["_GNU_SOURCE", "_FILE_OFFSET_BITS=64", "NAPI_VERSION=8"]
    }
  ]
}
