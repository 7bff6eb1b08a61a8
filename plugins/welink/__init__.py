"""The built-in Huawei WeLink channel: card notifications to WeLink users (see ``plugin``)."""
