package org.modelrunner.host;

import java.net.URL;
import java.net.URLClassLoader;

/** The class loader of one model version; the exit guard recognises model code by it. */
final class ModelLoader extends URLClassLoader {
    static { ClassLoader.registerAsParallelCapable(); }

    ModelLoader(String name, URL[] urls, ClassLoader parent) { super(name, urls, parent); }
}
