package clash.message;

/** Names that differ only in case or underscores, and names proto cannot spell. */
public class Cases {
    public int value;
    public int Value;
    public String fooBar;
    public String foo_bar;
    public String url;
    public String URL;
    public long a$b;
    public String DESCRIPTOR;
    public double caf\u00e9; // "café": not an ASCII identifier
    public int x_y;
    public int xY;
    public int x_;
    public int x;
}
